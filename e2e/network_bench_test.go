package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The networking benchmarks: how fast task changes reach every node's
// names, routes and rules, how fast a container's DNS server answers, and
// how fast data moves over the overlay and through a virtual IP. Each
// reports its figures with b.ReportMetric and asserts no timing: the goals
// are in the doc comments, for whoever reads the numbers.

const propagationNodes = 10

// propagationCompose is web, one replica per node, with a health check
// quick to find a sick task, replaced at once when it fails (no backoff:
// every slot fails again ten changes later).
const propagationCompose = `
services:
  web:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "web"]
    healthcheck:
      x-berth-http: {port: 8080, path: /health}
      interval: 100ms
      retries: 1
    deploy:
      replicas: %d
      placement:
        max_replicas_per_node: 1
      restart_policy:
        condition: any
        delay: 0s
`

// BenchmarkEndpointPropagation runs web, one replica on each of 10 nodes,
// and makes 100 changes, one after the other: a task turns unhealthy (POST
// /sick), which fails it (an unhealthy task is replaced, not waited for),
// and its replacement turns healthy. Each change flips the readiness of
// two tasks (the sick one leaves the map, the new one joins it and becomes
// ready); the next starts once `berth ps` shows the replacement healthy.
// Every agent logs how long each task record change took from the
// dispatcher to its names, routes and rules ("network change
// programmed"); the benchmark reports p50, p99 and the maximum of those
// latencies over all nodes and changes (goal: p99 <= 250 ms), and how
// many there were.
//
// A record the map removes carries no time (only added or changed ones
// are stamped), so the sick task leaving the map is not among them: what
// is measured is the replacement being added and turning ready.
func BenchmarkEndpointPropagation(b *testing.B) {
	names := make([]string, propagationNodes)
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i)
	}
	c := newNetCluster(b, names...)
	c.importTestapp()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", fmt.Sprintf(propagationCompose, propagationNodes)), "-p", "prop")
	current := map[string]string{} // node -> the healthy task there
	eventually(b, 3*time.Minute, func() (bool, string) {
		tasks := c.ps("prop/web")
		clear(current)
		for _, tk := range tasks {
			if tk.State == "running" && tk.Health == "healthy" {
				current[tk.Node] = tk.ID
			}
		}
		return len(current) == propagationNodes, fmt.Sprintf("want a healthy task on each of %d nodes, have %+v", propagationNodes, tasks)
	})

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Only what the agents log from here on counts: not the tasks'
		// first start.
		from := map[string]int{}
		for name, p := range c.agents {
			from[name] = len(p.out.String())
		}
		involved := map[string]bool{}
		var last string
		for change := range 100 {
			node := names[change%len(names)]
			sick := current[node]
			if out, err := c.inTask(sick, "get", "-X", "POST", "http://127.0.0.1:8080/sick"); err != nil {
				b.Fatalf("change %d: making %s sick: %v %q", change, sick, err, out)
			}
			eventually(b, time.Minute, func() (bool, string) {
				tasks := c.ps("prop/web")
				for _, tk := range tasks {
					if tk.Node == node && tk.ID != sick && tk.State == "running" && tk.Health == "healthy" {
						current[node] = tk.ID
						return true, ""
					}
				}
				return false, fmt.Sprintf("change %d: no healthy replacement of %s on %s: %+v", change, sick, node, tasks)
			})
			involved[sick], involved[current[node]] = true, true
			last = current[node]
		}
		b.StopTimer()
		// The last replacement turning ready may still be on its way to
		// some agents: wait a moment for both of its records (added, then
		// ready) on every node, without failing if one was merged away.
		settle(10*time.Second, func() bool {
			for _, p := range c.agents {
				if len(programmedLatencies(p.out.String(), map[string]bool{last: true})) < 2 {
					return false
				}
			}
			return true
		})
		var all []time.Duration
		for _, name := range names {
			all = append(all, programmedLatencies(c.agents[name].out.String()[from[name]:], involved)...)
		}
		if len(all) == 0 {
			b.Fatal("no agent logged a \"network change programmed\" line for the changed tasks")
		}
		b.ReportMetric(ms(quantile(all, 50)), "p50-ms")
		b.ReportMetric(ms(quantile(all, 99)), "p99-ms")
		b.ReportMetric(ms(quantile(all, 100)), "max-ms")
		b.ReportMetric(float64(len(all)), "records")
		b.StartTimer()
	}
	c.mustBerth("delete", "prop")
}

// programmedRE matches an agent's log line for one task record change its
// network followed, and takes the task and the latency.
var programmedRE = regexp.MustCompile(`msg="network change programmed".*\btask=(\S+).*\blatency=(\S+)`)

// programmedLatencies reads the latencies an agent's log gives for the
// records of the tasks in ids.
func programmedLatencies(log string, ids map[string]bool) []time.Duration {
	var out []time.Duration
	for _, m := range programmedRE.FindAllStringSubmatch(log, -1) {
		if !ids[m[1]] {
			continue
		}
		if d, err := time.ParseDuration(m[2]); err == nil {
			out = append(out, d)
		}
	}
	return out
}

const dnsBenchCompose = `
services:
  web:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "web"]
    deploy:
      replicas: 2
  client:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "client"]
`

// dnsBenchRE reads testapp dnsbench's line.
var dnsBenchRE = regexp.MustCompile(`n=(\d+) failed=(\d+) p50_us=(\d+) p99_us=(\d+)`)

// BenchmarkDNSFromContainer resolves a service's name (its virtual IP) and
// tasks.NAME (its tasks' addresses) 2000 times each, one lookup after the
// other, from inside a container, with Go's resolver (an A and an AAAA
// query each): the container's own DNS server answers. It reports p50 and
// p99 in microseconds (goal: p99 <= 2 ms on two cores).
func BenchmarkDNSFromContainer(b *testing.B) {
	c := newNetCluster(b, "alpha", "beta")
	c.importTestapp()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", dnsBenchCompose), "-p", "dns")
	c.waitRunning("dns/web", 2, 2*time.Minute)
	c.waitRunning("dns/client", 1, time.Minute)
	c.lookup("dns/client", "web")
	c.lookup("dns/client", "tasks.web")

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, q := range []struct{ name, unit string }{{"web", "vip"}, {"tasks.web", "tasks"}} {
			out, err := c.inTask("dns/client", "dnsbench", "-name", q.name, "-n", "2000")
			m := dnsBenchRE.FindStringSubmatch(out)
			if err != nil || m == nil {
				b.Fatalf("dnsbench %s: %v %q", q.name, err, out)
			}
			b.ReportMetric(atof(b, m[3]), q.unit+"-p50-us")
			b.ReportMetric(atof(b, m[4]), q.unit+"-p99-us")
		}
	}
	c.mustBerth("delete", "dns")
}

// throughputCompose is a sink on beta behind a virtual IP, a client on
// alpha (across the overlay) and one on beta (beside the sink).
const throughputCompose = `
services:
  sink:
    image: localhost/testapp:latest
    command: ["testapp", "sink", "-port", "9000"]
    deploy:
      placement: {constraints: ["node.name==beta"]}
  client:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "client"]
    deploy:
      placement: {constraints: ["node.name==alpha"]}
  near:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "near"]
    deploy:
      placement: {constraints: ["node.name==beta"]}
`

const (
	throughputBytes = "1G"
	throughputRuns  = 7
)

// sendRE reads testapp send's line.
var sendRE = regexp.MustCompile(`sent \d+ bytes in \S+: ([0-9.]+) MB/s`)

// BenchmarkThroughput sends 1 GB over one TCP connection to a sink on
// beta, seven times each way, the ways taken in turn: from alpha to the
// sink's task address (overlay), from alpha to its virtual IP (overlay and
// DNAT), and from a container beside it on beta to its task address (two
// veths, no overlay). It reports the median MB/s of each, and the ratios
// vip/direct (goal >= 0.9) and overlay/same-node (goal >= 0.8).
func BenchmarkThroughput(b *testing.B) {
	c := newNetCluster(b, "alpha", "beta")
	c.importTestapp()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", throughputCompose), "-p", "tp")
	for _, svc := range []string{"sink", "client", "near"} {
		c.waitRunning("tp/"+svc, 1, 2*time.Minute)
	}
	vip := c.lookup("tp/client", "sink")[0]
	direct := c.lookup("tp/client", "tasks.sink")[0]
	ways := []struct{ name, from, to string }{
		{"direct", "tp/client", direct},
		{"vip", "tp/client", vip},
		{"same-node", "tp/near", direct},
	}
	// The sink is ready once a small send gets through each way.
	for _, w := range ways {
		eventually(b, 30*time.Second, func() (bool, string) {
			out, err := c.inTask(w.from, "send", "-timeout", "5s", "-addr", w.to+":9000", "-bytes", "1M")
			return err == nil, fmt.Sprintf("%s: %v %q", w.name, err, out)
		})
	}

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rates := map[string][]float64{}
		for range throughputRuns {
			for _, w := range ways {
				out, err := c.inTask(w.from, "send", "-addr", w.to+":9000", "-bytes", throughputBytes)
				m := sendRE.FindStringSubmatch(out)
				if err != nil || m == nil {
					b.Fatalf("%s: send to %s: %v %q", w.name, w.to, err, out)
				}
				rates[w.name] = append(rates[w.name], atof(b, m[1]))
			}
		}
		med := map[string]float64{}
		for _, w := range ways {
			med[w.name] = median(rates[w.name])
			b.ReportMetric(med[w.name], w.name+"-MB/s")
			b.Logf("%s MB/s: %v", w.name, rates[w.name])
		}
		b.ReportMetric(med["vip"]/med["direct"], "vip/direct")
		b.ReportMetric(med["direct"]/med["same-node"], "overlay/same-node")
	}
	c.mustBerth("delete", "tp")
}

// quantile returns the p-th percentile of ds by the nearest-rank method
// (the smallest value at or above p percent of them). It sorts ds.
func quantile(ds []time.Duration, p int) time.Duration {
	slices.Sort(ds)
	rank := (p*len(ds) + 99) / 100
	return ds[max(rank, 1)-1]
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func atof(b *testing.B, s string) float64 {
	b.Helper()
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		b.Fatalf("%q is not a number: %v", s, err)
	}
	return f
}

// settle polls cond until it holds or timeout passes, and says which: for
// waits that may fall short without failing the benchmark.
func settle(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		<-time.After(wait)
	}
}
