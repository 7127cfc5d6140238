package apiserver

import (
	"errors"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/snapshot"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// snapshotChunkSize is the most a SnapshotChunk carries, well under
// gRPC's message limit.
const snapshotChunkSize = 256 << 10

// SaveSnapshot streams a snapshot file of the cluster to the caller.
func (s *Server) SaveSnapshot(req *berthv1.SaveSnapshotRequest, stream berthv1.ClusterService_SaveSnapshotServer) error {
	if s.cfg.Snapshots == nil {
		return status.Error(codes.Unimplemented, "this server takes no snapshots")
	}
	w := &chunkWriter{send: stream.Send}
	opts := snapshot.Options{Passphrase: req.GetPassphrase(), WithoutKey: req.GetWithoutKey()}
	h, err := s.cfg.Snapshots.Save(stream.Context(), w, opts)
	if err == nil {
		err = w.flush()
	}
	switch {
	case errors.Is(err, snapshot.ErrNeedPassphrase):
		return status.Error(codes.InvalidArgument, err.Error())
	case err != nil && w.sent:
		// The caller has part of a file: it must not keep it.
		return status.Errorf(codes.Aborted, "the snapshot failed while it was sent: %v", storeError(err))
	case err != nil:
		return storeError(err)
	}
	s.log.Info("snapshot sent", "revision", h.EtcdRevision, "with_key", h.Key != nil)
	return nil
}

// chunkWriter sends what is written to it as SnapshotChunks of
// snapshotChunkSize.
type chunkWriter struct {
	send func(*berthv1.SnapshotChunk) error
	buf  []byte
	sent bool
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = make([]byte, 0, snapshotChunkSize)
		}
		k := min(len(p), snapshotChunkSize-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == snapshotChunkSize {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// flush sends what is buffered.
func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	w.sent = true
	// Each chunk gets its own buffer: nothing is reused while gRPC may
	// still hold it.
	err := w.send(&berthv1.SnapshotChunk{Data: w.buf})
	w.buf = nil
	return err
}
