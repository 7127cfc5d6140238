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
)

// New starts an embedded etcd and returns a store on it.
func New(t testing.TB) *store.Store {
	t.Helper()
	e, err := etcd.StartEmbedded(etcd.EmbeddedConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	cli, err := etcd.Connect(context.Background(), e.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return store.New(cli)
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
