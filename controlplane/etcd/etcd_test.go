package etcd

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// tcpListeners returns the local addresses of the TCP sockets this process
// listens on, read from /proc: the sockets among its descriptors that
// /proc/net/tcp{,6} lists in state LISTEN.
func tcpListeners(t *testing.T) map[string]bool {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	out := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx_queue:rx_queue tr:when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) > 9 && fields[3] == "0A" && inodes[fields[9]] {
				out[fields[1]] = true
			}
		}
		f.Close()
	}
	return out
}

func startEmbedded(t *testing.T) (*Embedded, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "etcd")
	e, err := StartEmbedded(EmbeddedConfig{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e, dir
}

// TestEmbeddedListensOnNoTCPPort: the member holds the cluster's state,
// the CA among it, so nothing on the machine may reach it over TCP (it
// used to serve clients and peers on loopback ports, with no
// authentication).
func TestEmbeddedListensOnNoTCPPort(t *testing.T) {
	before := tcpListeners(t)
	startEmbedded(t)
	for addr := range tcpListeners(t) {
		if !before[addr] {
			t.Errorf("the embedded etcd listens on TCP %s (hex address from /proc/net/tcp)", addr)
		}
	}
}

// TestEmbeddedSocketIsPrivate: the member's client socket is in a 0700
// directory, is itself 0600, serves etcd's API to the server's user, and
// refuses another user.
func TestEmbeddedSocketIsPrivate(t *testing.T) {
	e, dir := startEmbedded(t)
	socket := filepath.Join(dir, SocketName)
	if want := "unix://" + socket; e.Endpoint() != want {
		t.Fatalf("Endpoint() = %q, want %q", e.Endpoint(), want)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, socket: 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %04o, want %04o", path, got, want)
		}
	}
	if fi, _ := os.Stat(socket); fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("%s is not a socket: %s", socket, fi.Mode())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cli, err := Connect(ctx, []string{e.Endpoint()}, ClientTLS{})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(ctx, "/berth/probe", "x"); err != nil {
		t.Fatalf("the server's user cannot use the socket: %v", err)
	}

	if os.Geteuid() != 0 {
		t.Skip("telling another user's refusal apart needs root (to act as that user)")
	}
	if err := dialAs(65534, socket); !errors.Is(err, syscall.EACCES) {
		t.Fatalf("user 65534 dialling %s: %v, want permission denied", socket, err)
	}
}

// dialAs connects to the unix socket at path with the file-system user id
// uid, on a thread of its own: setfsuid changes only the calling thread,
// and drops root's power to override file permissions while it is not 0.
// The thread is never handed back to the runtime, so it ends with the
// goroutine.
func dialAs(uid int, path string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		syscall.RawSyscall(syscall.SYS_SETFSUID, uintptr(uid), 0, 0)
		if now, _, _ := syscall.RawSyscall(syscall.SYS_SETFSUID, ^uintptr(0), 0, 0); int(now) != uid {
			errc <- errors.New("setfsuid did not take")
			return
		}
		c, err := net.Dial("unix", path)
		if err == nil {
			c.Close()
		}
		errc <- err
	}()
	return <-errc
}

// TestEmbeddedRestartKeepsData: the member's data survives a restart on
// the same directory (the socket left by the first run is replaced).
func TestEmbeddedRestartKeepsData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, want := range []string{"", "kept"} {
		e, err := StartEmbedded(EmbeddedConfig{DataDir: dir})
		if err != nil {
			t.Fatalf("start %d: %v", i+1, err)
		}
		cli := e.Client()
		resp, err := cli.Get(ctx, "/berth/restart")
		if err == nil && want != "" && (len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != want) {
			err = errors.New("the value written before the restart is gone")
		}
		if err == nil {
			_, err = cli.Put(ctx, "/berth/restart", "kept", clientv3.WithPrevKV())
		}
		cli.Close()
		e.Close()
		if err != nil {
			t.Fatalf("start %d: %v", i+1, err)
		}
	}
}

func TestEmbeddedRefusesLongSocketPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 110))
	_, err := StartEmbedded(EmbeddedConfig{DataDir: dir})
	if err == nil || !strings.Contains(err.Error(), "shorter --data-dir") {
		t.Fatalf("StartEmbedded in a deep directory: %v, want a refusal that names --data-dir", err)
	}
}
