// Package etcd starts the embedded etcd a single Berth server keeps its
// state in, and connects to etcd, embedded or external.
package etcd

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
)

// SocketName is the file, in the member's data directory, of the unix
// socket the embedded member serves clients on.
const SocketName = "etcd.sock"

// maxSocketPath is the longest path a unix socket may be bound at on
// Linux (sun_path is 108 bytes with its terminating NUL).
const maxSocketPath = 107

// Embedded is an etcd member running inside the Berth server process.
type Embedded struct {
	etcd   *embed.Etcd
	socket string
}

// EmbeddedConfig says where the embedded member keeps its data.
type EmbeddedConfig struct {
	// DataDir holds the member's data and its client socket; it is
	// created when missing and made private to the server's user.
	DataDir string
	// StartTimeout bounds how long Start waits for the member to serve.
	StartTimeout time.Duration
}

// advertised is the URL the lone member advertises for its peer and
// client traffic, as every embedded member has since the first release
// (the member's identity in its data derives from it). Nothing dials it:
// the member has no peers and serves clients only in process and on its
// unix socket.
var advertised = url.URL{Scheme: "http", Host: "127.0.0.1:0"}

// StartEmbedded starts an etcd member in cfg.DataDir and waits until it
// serves.
//
// The member holds the whole cluster's state, so it serves no TCP port:
// the server calls it in process (Client), and tools (etcdctl, backups)
// reach it on the unix socket SocketName in cfg.DataDir, which only the
// server's user can open. It has no peer listener, since no other member
// ever joins it; several servers share an external etcd instead.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = time.Minute
	}
	if cfg.DataDir == "" {
		return nil, errors.New("embedded etcd: a data directory is required")
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: data directory %s: %w", cfg.DataDir, err)
	}
	socket := filepath.Join(dir, SocketName)
	if len(socket) > maxSocketPath {
		return nil, fmt.Errorf("embedded etcd: the socket path %s is longer than the %d bytes a unix socket path may have; choose a shorter --data-dir", socket, maxSocketPath)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	// The directory is what keeps other users from the socket while it is
	// made (its first mode follows the umask); an older data directory
	// may have been made with looser permissions.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd: making %s private: %w", dir, err)
	}
	ec := embed.NewConfig()
	ec.Name = "berth"
	ec.Dir = dir
	ec.ListenClientUrls = []url.URL{{Scheme: "unix", Path: socket}}
	ec.ListenClientHttpUrls = nil
	ec.AdvertiseClientUrls = []url.URL{advertised}
	ec.ListenPeerUrls = nil
	ec.AdvertisePeerUrls = []url.URL{advertised}
	ec.ListenMetricsUrls = nil
	ec.EnableGRPCGateway = false
	ec.EnablePprof = false
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	ec.LogLevel = "error"
	ec.LogOutputs = []string{filepath.Join(dir, "etcd.log")}
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
		return nil, fmt.Errorf("embedded etcd: starting in %s: %w", dir, err)
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
	if err := os.Chmod(socket, 0o600); err != nil {
		e.Close()
		return nil, fmt.Errorf("embedded etcd: making its socket %s private: %w", socket, err)
	}
	return &Embedded{etcd: e, socket: socket}, nil
}

// Endpoint is the member's client URL for tools on this machine run as the
// server's user: unix:// and the socket's absolute path.
func (e *Embedded) Endpoint() string { return "unix://" + e.socket }

// Err reports a fatal error of the member.
func (e *Embedded) Err() <-chan error { return e.etcd.Err() }

// Close stops the member.
func (e *Embedded) Close() { e.etcd.Close() }

// Client returns a client that calls the member in this process
// directly, without gRPC over a socket: no marshalling, framing or copies
// for the server's own writes and watches. Close it before Close.
func (e *Embedded) Client() *clientv3.Client { return v3client.New(e.etcd.Server) }
