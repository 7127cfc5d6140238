package agent

import (
	"context"
	"sync"
	"time"

	"github.com/berthproject/berth/agent/image"
	"github.com/berthproject/berth/agent/runtime"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/imageref"
)

// progressSendPeriod is how often a pull or push streams its progress.
const progressSendPeriod = 500 * time.Millisecond

// progressStream sends ImageProgress messages on a stream at most every
// progressSendPeriod, safe to call from a transfer's goroutine, and the
// last one always.
type progressStream struct {
	send func(*berthv1.ImageProgress) error
	base *berthv1.ImageProgress

	mu     sync.Mutex
	last   time.Time
	closed bool
}

func (s *nodeService) newProgressStream(img string, send func(*berthv1.ImageProgress) error) *progressStream {
	return &progressStream{send: send, base: &berthv1.ImageProgress{NodeId: s.a.creds.NodeID, NodeName: s.a.cfg.Name, Image: img}}
}

func (p *progressStream) step(status string, done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || time.Since(p.last) < progressSendPeriod {
		return
	}
	p.last = time.Now()
	p.send(&berthv1.ImageProgress{NodeId: p.base.NodeId, NodeName: p.base.NodeName, Image: p.base.Image, Status: status, DoneBytes: done, TotalBytes: total})
}

// finish sends the last message, with the error if the transfer failed.
func (p *progressStream) finish(status, digest string, size int64, err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	msg := &berthv1.ImageProgress{NodeId: p.base.NodeId, NodeName: p.base.NodeName, Image: p.base.Image, Status: status, Done: true, Digest: digest, DoneBytes: size, TotalBytes: size}
	if err != nil {
		msg.Status, msg.Error = "failed", err.Error()
	}
	return p.send(msg)
}

// PullImage fetches an image into the node, from the request's source (or
// the one the node's assignments gave for it), and streams its progress.
// A failed pull ends with a message carrying the error, not a gRPC error,
// so that callers pulling on many nodes show each node's outcome.
func (s *nodeService) PullImage(req *berthv1.NodePullImageRequest, stream berthv1.NodeService_PullImageServer) error {
	ps := s.newProgressStream(req.GetImage(), stream.Send)
	src := req.GetSource()
	if src == nil {
		src = s.a.puller.Source(req.GetImage())
	}
	im, err := s.a.puller.Pull(stream.Context(), req.GetImage(), "", src, func(p image.Progress) {
		ps.step(p.String(), p.Done, p.Total)
	})
	if err == nil && im.Digest == "" {
		// Already present: the quick check does not read the digest.
		im.Digest, im.Size = s.localDigest(stream.Context(), req.GetImage())
	}
	return ps.finish("pulled", im.Digest, im.Size, err)
}

// localDigest returns the manifest digest and size of the node's image
// ref, or nothing when it cannot tell.
func (s *nodeService) localDigest(ctx context.Context, ref string) (string, int64) {
	name, err := imageref.Normalize(ref)
	if err != nil {
		return "", 0
	}
	images, err := s.a.rt.ListImages(ctx)
	if err != nil {
		return "", 0
	}
	for _, im := range images {
		if im.Name == name {
			return im.Digest, im.Size
		}
	}
	return "", 0
}

// PushImage sends an image of the node's store to its registry with the
// request's credential, streaming the progress.
func (s *nodeService) PushImage(req *berthv1.NodePushImageRequest, stream berthv1.NodeService_PushImageServer) error {
	ps := s.newProgressStream(req.GetImage(), stream.Send)
	src := req.GetSource()
	opts := runtime.PushOptions{
		Registry: runtime.Registry{Username: src.GetUsername(), Secret: src.GetSecret(), PlainHTTP: src.GetInsecure()},
		Progress: func(p runtime.Progress) { ps.step("pushing", p.Done, p.Total) },
	}
	err := s.a.rt.Push(stream.Context(), req.GetImage(), opts)
	var digest string
	var size int64
	if err == nil {
		digest, size = s.localDigest(stream.Context(), req.GetImage())
	}
	return ps.finish("pushed", digest, size, err)
}
