package scale

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/clientconfig"
	"google.golang.org/grpc"
)

// server is the berth server process under test.
type server struct {
	cmd         *exec.Cmd
	logPath     string
	addr        string
	metricsURL  string
	token       string
	conn        *grpc.ClientConn
	api         berthv1.ClusterServiceClient
	done        chan struct{}
	etcdClients []string
}

// joinLine is where the server's output gives the join token.
var joinLine = regexp.MustCompile(`--token (\S+)`)

// startServer runs `berth server` with its state in dir, on loopback
// ports, and connects to its API.
func startServer(ctx context.Context, cfg *Config, dir string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	mport, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &server{
		addr:       fmt.Sprintf("127.0.0.1:%d", port),
		metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", mport),
		logPath:    filepath.Join(dir, "server.log"),
		done:       make(chan struct{}),
	}
	configPath := filepath.Join(dir, "config")
	args := []string{"server", "--config", configPath, "--data-dir", filepath.Join(dir, "server"),
		"--listen", s.addr, "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", mport),
		// Room for a /24 per node far past the target of a thousand.
		"--container-range", "100.64.0.0/10",
		// Each service gets a network sized for its tasks (Apply).
		"--network-range", networkRange.String(), "--log-level", "warn",
		// Every simulated node joins from 127.0.0.1, which the per-address
		// join limit would hold to 5 a second.
		"--join-rate", "-1"}
	if len(cfg.EtcdEndpoints) > 0 {
		args = append(args, "--etcd-endpoints", strings.Join(cfg.EtcdEndpoints, ","))
	}
	if cfg.ServerCPUProfile != "" {
		args = append(args, "--profiles")
	}
	args = append(args, cfg.ServerArgs...)
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(cfg.Bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s server: %w", cfg.Bin, err)
	}
	go func() {
		s.cmd.Wait()
		logf.Close()
		close(s.done)
	}()
	if err := s.waitToken(ctx, time.Minute); err != nil {
		s.stop()
		return nil, err
	}
	admin, err := clientconfig.Load(configPath)
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("admin config of the server: %w", err)
	}
	// Listings of a hundred thousand tasks are far over gRPC's default
	// 4 MiB message limit.
	s.conn, err = admin.Dial(ctx, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)))
	if err != nil {
		s.stop()
		return nil, err
	}
	s.api = berthv1.NewClusterServiceClient(s.conn)
	if _, err := s.api.Version(ctx, &berthv1.VersionRequest{}); err != nil {
		s.stop()
		return nil, fmt.Errorf("server version: %w", err)
	}
	s.etcdClients = cfg.EtcdEndpoints
	if len(s.etcdClients) == 0 {
		// The embedded etcd serves only its unix socket in the data dir,
		// which the harness, as the server's user, may open.
		abs, err := filepath.Abs(filepath.Join(dir, "server", "etcd", "etcd.sock"))
		if err != nil {
			s.stop()
			return nil, err
		}
		s.etcdClients = []string{"unix://" + abs}
	}
	return s, nil
}

// waitToken waits until the server printed its join command.
func (s *server) waitToken(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(s.logPath)
		if m := joinLine.FindSubmatch(b); m != nil {
			s.token = string(m[1])
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("the server exited before it was ready; see %s:\n%s", s.logPath, tail(b, 2000))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server printed no join command after %s; see %s", timeout, s.logPath)
		}
	}
}

// stop ends the server: SIGTERM, then SIGKILL when it lingers.
func (s *server) stop() {
	if s.conn != nil {
		s.conn.Close()
	}
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
		s.cmd.Process.Kill()
		<-s.done
	}
}

// pid is the server process's id.
func (s *server) pid() int { return s.cmd.Process.Pid }

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail is the last n bytes of b.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
