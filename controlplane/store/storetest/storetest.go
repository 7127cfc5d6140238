// Package storetest gives tests a store on a real embedded etcd, in a
// temporary directory, stopped when the test ends.
package storetest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/berthproject/berth/controlplane/etcd"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/proto"
)

// New starts an embedded etcd and returns a store on it.
func New(t testing.TB) *store.Store {
	t.Helper()
	e, err := etcd.StartEmbedded(etcd.EmbeddedConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	cli, err := etcd.Connect(context.Background(), []string{e.Endpoint()}, etcd.ClientTLS{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	s := store.New(cli)
	// Cleanups run last first: the events the test's components recorded
	// are written before the client closes.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := s.FlushEvents(ctx); err != nil {
			t.Error(err)
		}
	})
	return s
}

// NewCache runs a cache over s and returns it once it holds everything.
func NewCache(t testing.TB, s *store.Store) *store.Cache {
	t.Helper()
	c := store.NewCache(s, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("cache: %v", err)
		}
	})
	select {
	case <-c.Synced():
	case <-time.After(20 * time.Second):
		t.Fatal("the cache did not load")
	}
	return c
}

// RunMirror runs m until the test ends and returns it once it is loaded.
func RunMirror[T proto.Message](t testing.TB, m *store.Mirror[T]) *store.Mirror[T] {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := m.WaitSynced(wctx); err != nil {
		t.Fatalf("mirror did not load: %v", err)
	}
	return m
}
