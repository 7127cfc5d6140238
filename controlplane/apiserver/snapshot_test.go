package apiserver

import (
	"bytes"
	"context"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/snapshotfile"
	"github.com/berthproject/berth/controlplane/seal"
	"github.com/berthproject/berth/controlplane/snapshot"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// chunkSink is the server side of a SaveSnapshot stream, keeping what is
// sent.
type chunkSink struct {
	grpc.ServerStream
	ctx    context.Context
	chunks [][]byte
}

func (s *chunkSink) Context() context.Context { return s.ctx }
func (s *chunkSink) Send(c *berthv1.SnapshotChunk) error {
	s.chunks = append(s.chunks, c.GetData())
	return nil
}

func TestSaveSnapshot(t *testing.T) {
	s := newServer(t)
	sink := &chunkSink{ctx: t.Context()}
	err := s.SaveSnapshot(&berthv1.SaveSnapshotRequest{WithoutKey: true}, sink)
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("without a snapshot taker: %v, want Unimplemented", err)
	}

	raw, _ := seal.Generate()
	kek, _ := seal.New(raw)
	s.cfg.Snapshots = snapshot.New(snapshot.Config{Store: s.cfg.Store, ClusterID: func() string { return "c1" }, KEK: kek, TempDir: t.TempDir(), Log: s.log})
	err = s.SaveSnapshot(&berthv1.SaveSnapshotRequest{}, sink)
	if status.Code(err) != codes.InvalidArgument || len(sink.chunks) != 0 {
		t.Errorf("with the key and no passphrase: %v, %d chunks sent; want InvalidArgument and nothing sent", err, len(sink.chunks))
	}

	if err := s.SaveSnapshot(&berthv1.SaveSnapshotRequest{Passphrase: []byte("pass")}, sink); err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	for i, c := range sink.chunks {
		if len(c) == 0 || len(c) > snapshotChunkSize {
			t.Errorf("chunk %d holds %d bytes, want 1 to %d", i, len(c), snapshotChunkSize)
		}
		file.Write(c)
	}
	r, err := snapshotfile.NewReader(&file)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.Header.OpenKey([]byte("pass")); err != nil || !bytes.Equal(got, raw) {
		t.Errorf("the key in the file sent: %v", err)
	}
	if err := r.CopyEtcd(new(bytes.Buffer)); err != nil {
		t.Error(err)
	}
}

func TestChunkWriter(t *testing.T) {
	for _, sizes := range [][]int{{1}, {snapshotChunkSize}, {snapshotChunkSize + 1}, {10, snapshotChunkSize * 2, 5}, {snapshotChunkSize - 1, 1, 1}} {
		var chunks [][]byte
		w := &chunkWriter{send: func(c *berthv1.SnapshotChunk) error { chunks = append(chunks, c.Data); return nil }}
		var want bytes.Buffer
		for i, n := range sizes {
			p := bytes.Repeat([]byte{byte(i + 1)}, n)
			want.Write(p)
			if _, err := w.Write(p); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.flush(); err != nil {
			t.Fatal(err)
		}
		got := bytes.Join(chunks, nil)
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("writes of %v: the chunks do not make what was written", sizes)
		}
		for i, c := range chunks[:len(chunks)-1] {
			if len(c) != snapshotChunkSize {
				t.Errorf("writes of %v: chunk %d holds %d bytes, want full chunks but the last", sizes, i, len(c))
			}
		}
	}
}
