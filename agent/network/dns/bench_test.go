package dns

import (
	"fmt"
	"github.com/berthproject/berth/agent/network/nspath"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	miekg "github.com/miekg/dns"

	"github.com/berthproject/berth/agent/network/netmap"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// bigSnapshot is a namespace of 10 apps, each with its own network and
// services/10 services of tasksPer ready tasks; every fourth service is
// DNSRR, and each has an alias. Task ids are "t-APP-SERVICE-TASK",
// service names "svc-SERVICE".
func bigSnapshot(services, tasksPer int) *netmap.Snapshot {
	const apps = 10
	snap := &netmap.Snapshot{
		Networks: map[string]*berthv1.Network{},
		Services: make(map[string]*berthv1.NetworkService, services),
		Tasks:    make(map[string]*berthv1.NetworkTask, services*tasksPer),
		Nodes:    map[string]*berthv1.NetworkNode{},
	}
	for a := range apps {
		app := fmt.Sprintf("app%d", a)
		nid, nname := "n-"+app, app+"_default"
		subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(128 + a), 0, 0}), 16)
		snap.Networks[nid] = &berthv1.Network{Meta: &berthv1.Meta{Id: nid}, Namespace: "default", App: app, Name: nname, Subnet: subnet.String()}
		next := subnet.Addr().Next().Next()
		take := func() netip.Addr { a := next; next = next.Next(); return a }
		for s := range services / apps {
			name := fmt.Sprintf("svc-%d", s)
			svc := &berthv1.NetworkService{
				Id: app + "/" + name, Namespace: "default", App: app, Name: name,
				Networks: []*berthv1.ServiceNetwork{{Network: nname, Aliases: []string{"alias-" + name}}},
			}
			if s%4 == 3 {
				svc.EndpointMode = berthv1.EndpointMode_ENDPOINT_MODE_DNSRR
			} else {
				svc.VirtualIps = []*berthv1.VirtualIP{{NetworkId: nid, Network: nname, Address: take().String()}}
			}
			snap.Services[svc.Id] = svc
			for t := range tasksPer {
				id := fmt.Sprintf("t-%d-%d-%d", a, s, t)
				snap.Tasks[id] = &berthv1.NetworkTask{
					Id: id, ServiceId: svc.Id, NodeId: "node1", Slot: uint64(t + 1), Ready: true,
					Networks: []*berthv1.TaskNetwork{{NetworkId: nid, Network: nname, Address: netip.PrefixFrom(take(), 16).String()}},
				}
			}
		}
	}
	return snap
}

// BenchmarkIndex builds the index of 1,000 services of 10 tasks, which
// the agent does on every change of the network map.
func BenchmarkIndex(b *testing.B) {
	snap := bigSnapshot(1000, 10)
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		NewIndex(snap)
	}
	reportCPU(b, cpu)
}

// cpuTime is the CPU time the process has used. On a busy machine the
// CPU time per operation says more than the wall time.
func cpuTime() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per operation since start, garbage
// collection included, in milliseconds.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N)/1e6, "cpu-ms/op")
}

// BenchmarkLookup is the index's share of a query.
func BenchmarkLookup(b *testing.B) {
	ix := NewIndex(bigSnapshot(1000, 10))
	names := []string{"svc-5.", "tasks.svc-7.", "svc-3.app0.", "alias-svc-9.", "example.com."}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ix.Lookup("t-0-0-0", names[i%len(names)], miekg.TypeA)
		i++
	}
}

// BenchmarkLookupFromContainer times whole queries: from a socket in a
// container's namespace to its server at 127.0.0.11:53 and back, with
// the index of 1,000 services of 10 tasks; p50 and p99 in microseconds.
// "4-clients" runs four clients at once.
func BenchmarkLookupFromContainer(b *testing.B) {
	requireRoot(b)
	ns := newNetNS(b)
	s := NewServer(Config{Resolvers: []string{"127.0.0.1:9"}, Log: slog.New(slog.DiscardHandler)})
	b.Cleanup(s.Shutdown)
	s.SetIndex(NewIndex(bigSnapshot(1000, 10)))
	if err := s.Listen("t-0-0-0", ns, nil); err != nil {
		b.Fatal(err)
	}
	names := []string{"svc-5.", "tasks.svc-7.", "svc-3.app0.", "alias-svc-9."}

	dial := func(b *testing.B, network string) *miekg.Conn {
		var co *miekg.Conn
		err := nspath.Do(ns, func() error {
			var err error
			co, err = miekg.DialTimeout(network, ListenAddr, 5*time.Second)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { co.Close() })
		return co
	}
	// run sends n queries on co and records each round trip in lat.
	run := func(co *miekg.Conn, n int, lat []time.Duration) error {
		m := new(miekg.Msg)
		for i := range n {
			m.SetQuestion(names[i%len(names)], miekg.TypeA)
			start := time.Now()
			co.SetDeadline(start.Add(5 * time.Second))
			if err := co.WriteMsg(m); err != nil {
				return err
			}
			resp, err := co.ReadMsg()
			if err != nil {
				return err
			}
			lat[i] = time.Since(start)
			if len(resp.Answer) == 0 {
				return fmt.Errorf("%s: no answer", names[i%len(names)])
			}
		}
		return nil
	}

	for _, network := range []string{"udp", "tcp"} {
		b.Run(network, func(b *testing.B) {
			co := dial(b, network)
			lat := make([]time.Duration, b.N)
			b.ResetTimer()
			if err := run(co, b.N, lat); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			reportPercentiles(b, lat)
		})
	}
	b.Run("udp-4-clients", func(b *testing.B) {
		const clients = 4
		conns := make([]*miekg.Conn, clients)
		for i := range conns {
			conns[i] = dial(b, "udp")
		}
		per := (b.N + clients - 1) / clients
		lat := make([]time.Duration, per*clients)
		errs := make([]error, clients)
		b.ResetTimer()
		var wg sync.WaitGroup
		for i, co := range conns {
			wg.Go(func() { errs[i] = run(co, per, lat[i*per:(i+1)*per]) })
		}
		wg.Wait()
		b.StopTimer()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		reportPercentiles(b, lat)
	})
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	at := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}
