package e2e

import (
	"context"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/clientconfig"
)

// BenchmarkLeaderFailover kills the leader of three servers (SIGKILL, as a
// crash would) b.N times and reports how long until another server leads,
// read every 10 ms from a surviving server's API. A new server replaces
// each one killed. The leader lease is 1 s, on a three-member etcd with a
// 500 ms election timeout.
func BenchmarkLeaderFailover(b *testing.B) {
	h := newHACluster(b, 3)
	var times []time.Duration
	for i := 0; i < b.N; i++ {
		old := h.leader()
		var other string
		for addr := range h.servers {
			if addr != old {
				other = addr
				break
			}
		}
		api := serverAPI(b, h, other)
		h.servers[old].kill()
		killed := time.Now()
		delete(h.servers, old)
		deadline := killed.Add(30 * time.Second)
		poll := time.NewTicker(10 * time.Millisecond)
		for {
			resp, err := api.ListServers(context.Background(), &berthv1.ListServersRequest{})
			if err == nil && newLeader(resp.GetServers(), old) {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("no new leader 30 s after killing %s (last error %v)", old, err)
			}
			<-poll.C
		}
		times = append(times, time.Since(killed))
		poll.Stop()
		h.addServer()
		h.knowServers()
	}
	reportPercentiles(b, times)
}

func newLeader(servers []*berthv1.ServerInfo, old string) bool {
	for _, s := range servers {
		if s.GetLeader() && s.GetAddress() != old {
			return true
		}
	}
	return false
}

// serverAPI connects to one server's API as the admin.
func serverAPI(b *testing.B, h *haCluster, addr string) berthv1.ClusterServiceClient {
	b.Helper()
	cfg, err := clientconfig.Load(h.configPath)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Server = addr
	conn, err := cfg.Dial(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return berthv1.NewClusterServiceClient(conn)
}
