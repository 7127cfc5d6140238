// Package etcd starts the embedded etcd a single Berth server keeps its
// state in, and connects to etcd, embedded or external.
package etcd

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
)

// Embedded is an etcd member running inside the Berth server process.
type Embedded struct {
	etcd      *embed.Etcd
	endpoints []string
}

// EmbeddedConfig says where the embedded member keeps its data and listens.
type EmbeddedConfig struct {
	// DataDir holds the member's data; it is created when missing.
	DataDir string
	// ClientURL is where clients connect; loopback with an ephemeral port
	// unless set, so nothing outside the machine can reach it.
	ClientURL string
	// PeerURL is where other members would connect.
	PeerURL string
	// StartTimeout bounds how long Start waits for the member to serve.
	StartTimeout time.Duration
}

func (c *EmbeddedConfig) setDefaults() {
	if c.ClientURL == "" {
		c.ClientURL = "http://127.0.0.1:0"
	}
	if c.PeerURL == "" {
		c.PeerURL = "http://127.0.0.1:0"
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = time.Minute
	}
}

// StartEmbedded starts an etcd member in cfg.DataDir and waits until it
// serves.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	cfg.setDefaults()
	if cfg.DataDir == "" {
		return nil, errors.New("embedded etcd: a data directory is required")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	clientURL, err := url.Parse(cfg.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: client URL %q: %w", cfg.ClientURL, err)
	}
	peerURL, err := url.Parse(cfg.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: peer URL %q: %w", cfg.PeerURL, err)
	}
	ec := embed.NewConfig()
	ec.Name = "berth"
	ec.Dir = cfg.DataDir
	ec.ListenClientUrls = []url.URL{*clientURL}
	ec.AdvertiseClientUrls = []url.URL{*clientURL}
	ec.ListenPeerUrls = []url.URL{*peerURL}
	ec.AdvertisePeerUrls = []url.URL{*peerURL}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	ec.LogLevel = "error"
	ec.LogOutputs = []string{filepath.Join(cfg.DataDir, "etcd.log")}
	// Old revisions are only needed by watches that fell behind, and the
	// cache reloads when that happens.
	ec.AutoCompactionMode = "periodic"
	ec.AutoCompactionRetention = "5m"
	// etcd keeps its log in memory up to a snapshot, and some entries
	// after it for followers to catch up with. A lone member has no
	// followers, and Berth's entries are transactions of a hundred tasks:
	// the defaults (10,000 and 5,000) would hold hundreds of megabytes.
	ec.SnapshotCount = 2000
	ec.SnapshotCatchUpEntries = 200
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: starting in %s: %w", cfg.DataDir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(cfg.StartTimeout):
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("embedded etcd: not ready after %s; see %s", cfg.StartTimeout, ec.LogOutputs[0])
	}
	endpoints := make([]string, 0, len(e.Clients))
	for _, l := range e.Clients {
		endpoints = append(endpoints, "http://"+l.Addr().String())
	}
	return &Embedded{etcd: e, endpoints: endpoints}, nil
}

// Endpoints are the client URLs of the member.
func (e *Embedded) Endpoints() []string { return e.endpoints }

// Err reports a fatal error of the member.
func (e *Embedded) Err() <-chan error { return e.etcd.Err() }

// Close stops the member.
func (e *Embedded) Close() { e.etcd.Close() }

// Client returns a client that calls the member in this process
// directly, without gRPC over a socket: no marshalling, framing or copies
// for the server's own writes and watches. Close it before Close.
func (e *Embedded) Client() *clientv3.Client { return v3client.New(e.etcd.Server) }

// Connect returns a client of the etcd cluster at endpoints, checked to be
// reachable.
func Connect(ctx context.Context, endpoints []string) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd at %v: %w", endpoints, err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Get(sctx, "/berth/health-check"); err != nil {
		cli.Close()
		return nil, fmt.Errorf("etcd at %v does not answer: %w", endpoints, err)
	}
	return cli, nil
}
