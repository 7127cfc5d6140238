package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/revision"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/trigger"
	controlapi "github.com/moby/buildkit/api/services/control"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TriggerCluster is what the leader's trigger runner asks of the cluster,
// done by the paths the API's own calls take: a build on a node picked
// as for `berth build`, a push with the cluster's registry credentials,
// and a new spec version rolled out by the service's update_config.
func (s *Server) TriggerCluster() trigger.Cluster { return triggerCluster{s} }

type triggerCluster struct{ s *Server }

var _ trigger.Cluster = triggerCluster{}

// Build builds h on the ready node with the most free memory, writing
// BuildKit's progress to log as lines.
func (c triggerCluster) Build(ctx context.Context, h *berthv1.BuildHeader, log func(string)) (*berthv1.BuildResult, error) {
	s := c.s
	node, err := s.buildNode("")
	if err != nil {
		return nil, errors.New(status.Convert(err).Message())
	}
	cli, err := s.cfg.Nodes.Client(node)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", node.Name, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	up, err := cli.Build(ctx)
	if err != nil {
		return nil, fmt.Errorf("node %s: %s", node.Name, status.Convert(err).Message())
	}
	log(fmt.Sprintf("building on node %s", node.Name))
	if err := up.Send(&berthv1.BuildRequest{Part: &berthv1.BuildRequest_Header{Header: h}}); err == nil {
		// A git context: no context chunks follow.
		up.CloseSend()
	}
	var (
		res      *berthv1.BuildResult
		progress trigger.Progress
	)
	for {
		ev, err := up.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, errors.New(status.Convert(err).Message())
		}
		if b := ev.GetStatus(); b != nil {
			var sr controlapi.StatusResponse
			if err := proto.Unmarshal(b, &sr); err == nil {
				for _, line := range progress.Lines(&sr) {
					log(line)
				}
			}
		}
		if r := ev.GetResult(); r != nil {
			r.NodeId = node.GetMeta().GetId()
			r.NodeName = node.Name
			s.recordBuild(ctx, r.NodeId, h.Tags, r)
			res = r
		}
	}
	if res == nil {
		return nil, fmt.Errorf("node %s ended the build without a result", node.Name)
	}
	return res, nil
}

// Push pushes image from node to its registry with the cluster's
// credentials for it.
func (c triggerCluster) Push(ctx context.Context, nodeRef, image string, log func(string)) error {
	s := c.s
	n, ok := s.findNode(nodeRef)
	if !ok {
		return fmt.Errorf("node %s is gone", nodeRef)
	}
	src := &berthv1.ImageSource{Image: image}
	if s.cfg.Registries != nil {
		if auth := s.cfg.Registries.ImageAuth(image); auth != nil {
			src = auth
		}
	}
	cli, err := s.cfg.Nodes.Client(n)
	if err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	stream, err := cli.PushImage(ctx, &berthv1.NodePushImageRequest{Image: image, Source: src})
	if err != nil {
		return fmt.Errorf("node %s: %s", n.Name, status.Convert(err).Message())
	}
	last := ""
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("pushing %s from node %s: %s", image, n.Name, status.Convert(err).Message())
		}
		if msg.Error != "" {
			return fmt.Errorf("pushing %s from node %s: %s", image, n.Name, msg.Error)
		}
		if line := msg.Status; line != "" && line != last {
			log(fmt.Sprintf("%s: %s", image, line))
			last = line
		}
		if msg.Done {
			return nil
		}
	}
}

// Deploy makes image, pinned to digest, the service's image: a new spec
// version, rolled out by the service's update_config.
func (c triggerCluster) Deploy(ctx context.Context, ns, app, name, image, digest, cause string) (uint64, bool, error) {
	s := c.s
	key := store.ServiceKey(ns, app, name)
	changed := false
	svc, err := guardedUpdateTxn(ctx, s, key, s.readService(ns, app, name), func(svc *berthv1.Service, txn *store.Txn) error {
		if svc.GetSpec().GetImage() == image && svc.GetSpec().GetImageDigest() == digest {
			return errUnchanged
		}
		spec := proto.Clone(svc.GetSpec()).(*berthv1.ServiceSpec)
		spec.Image, spec.ImageDigest = image, digest
		revision.Change(svc, spec, cause, berthv1.UpdateState_UPDATE_STATE_UPDATING, cause, time.Now())
		changed = true
		return s.serviceQuota(ctx, txn, "roll out", svc)
	})
	if err != nil {
		return 0, false, errors.New(status.Convert(err).Message())
	}
	if changed {
		s.log.Info("trigger rolls out a service", "namespace", ns, "app", app, "service", name, "image", image, "version", svc.SpecVersion)
		s.cfg.Store.RecordEvent(serviceEvent(svc, "update", fmt.Sprintf("%s: version %d runs %s", cause, svc.SpecVersion, image)))
	}
	return svc.SpecVersion, changed, nil
}

// WaitRollout waits, on the cache's changes, until the rollout of
// version ends.
func (c triggerCluster) WaitRollout(ctx context.Context, ns, app, name string, version uint64) error {
	s := c.s
	sub := s.cfg.Cache.Subscribe()
	defer s.cfg.Cache.Unsubscribe(sub)
	key := store.ServiceKey(ns, app, name)
	for {
		sub.Drain()
		svc, ok := s.cfg.Cache.Service(key)
		if !ok {
			return fmt.Errorf("service %s/%s was removed", app, name)
		}
		if done, err := rolloutEnded(svc, version); done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sub.Ready():
		}
	}
}

// rolloutEnded says whether the rollout of version has ended, and how.
func rolloutEnded(svc *berthv1.Service, version uint64) (bool, error) {
	st := svc.GetUpdateStatus()
	switch st.GetState() {
	case berthv1.UpdateState_UPDATE_STATE_ROLLBACK_STARTED, berthv1.UpdateState_UPDATE_STATE_ROLLBACK_PAUSED, berthv1.UpdateState_UPDATE_STATE_ROLLBACK_COMPLETED:
		// A failure action of rollback makes a version of its own.
		if svc.SpecVersion >= version {
			return true, fmt.Errorf("rolled back: %s", st.GetMessage())
		}
	}
	if svc.SpecVersion != version {
		return true, fmt.Errorf("version %d was replaced by version %d (%s) before it finished rolling out", version, svc.SpecVersion, svc.ChangeCause)
	}
	switch st.GetState() {
	case berthv1.UpdateState_UPDATE_STATE_COMPLETED:
		return true, nil
	case berthv1.UpdateState_UPDATE_STATE_PAUSED:
		return true, fmt.Errorf("update paused: %s", st.GetMessage())
	}
	return false, nil
}
