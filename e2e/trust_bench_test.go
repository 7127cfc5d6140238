package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// trustBenchRounds is how many task starts each side of the benchmark
// times.
const trustBenchRounds = 20

// BenchmarkTaskStartTrusted times task starts (scale by one, from the
// call to the task running) of a signed image that a trust policy covers,
// with the verification cached on the server and the node, beside the
// same bits from a repository no policy covers, in the same namespace;
// starts alternate between the two. It reports the p50 of each and their ratio
// (goal: at most 1.05), and checks that the node asked the registry once.
func BenchmarkTaskStartTrusted(b *testing.B) {
	reg := startRegistry(b, "", "")
	c := newCluster(b)
	agentMetrics := fmt.Sprintf("127.0.0.1:%d", freePort(b))
	c.startMachine("alpha", "--cpus", "64", "--memory", "68719476736", "--metrics-addr", agentMetrics)
	c.mustBerth("cluster", "settings", "--insecure-registry", reg.host)
	// The same bits in two repositories of one namespace: only the first
	// is covered by the policy, so the two sides differ by it alone.
	trustedImage, plainImage := reg.host+"/team/app:1", reg.host+"/other/app:1"
	c.pushTestImage(trustedImage, "alpha")
	c.pushTestImage(plainImage, "alpha")
	if out, err := c.berthIn(c.dir, "key", "generate", "release"); err != nil {
		b.Fatalf("key generate: %v\n%s", err, out)
	}
	c.mustBerth("sign", trustedImage, "--key", "release")
	c.mustBerth("trust", "set", reg.host+"/team/*", "--key", "release")
	// The first task of each verifies once (trusted) and fills the caches.
	c.mustBerth("apply", "-f", c.writeFile("trusted/compose.yaml", fmt.Sprintf(trustCompose, trustedImage)), "-p", "trusted")
	c.mustBerth("apply", "-f", c.writeFile("plain/compose.yaml", fmt.Sprintf(trustCompose, plainImage)), "-p", "plain")
	c.waitRunning("trusted/web", 1, 2*time.Minute)
	c.waitRunning("plain/web", 1, 2*time.Minute)
	api := benchAPI(b, c)

	for range b.N {
		var trusted, plain []time.Duration
		for i := range trustBenchRounds {
			// Each round starts one task of each; which goes first
			// alternates, so neither always starts beside one more
			// container.
			replicas := uint64(i + 2)
			if i%2 == 0 {
				trusted = append(trusted, scaleAndTime(b, api, "default", "trusted", "web", replicas))
				plain = append(plain, scaleAndTime(b, api, "default", "plain", "web", replicas))
			} else {
				plain = append(plain, scaleAndTime(b, api, "default", "plain", "web", replicas))
				trusted = append(trusted, scaleAndTime(b, api, "default", "trusted", "web", replicas))
			}
		}
		p50t, p50p := p50(trusted), p50(plain)
		b.ReportMetric(float64(p50t.Microseconds())/1000, "trusted-p50-ms")
		b.ReportMetric(float64(p50p.Microseconds())/1000, "plain-p50-ms")
		b.ReportMetric(float64(p50t)/float64(p50p), "ratio")
		// Every trusted start was verified from the node's cache: the
		// registry was asked once, for the first task.
		body, err := httpGet("http://" + agentMetrics + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		if want := `berth_image_verifications_total{cached="false",result="signed",role="node"} 1` + "\n"; !strings.Contains(body, want) {
			b.Fatalf("the node asked the registry more than once:\n%s", berthLines(body))
		}
		c.mustBerth("scale", "trusted/web=1", "plain/web=1")
		c.waitRunning("trusted/web", 1, 2*time.Minute)
		c.waitRunning("plain/web", 1, 2*time.Minute)
	}
}

func p50(times []time.Duration) time.Duration {
	s := slices.Clone(times)
	slices.Sort(s)
	return s[len(s)/2]
}

// scaleAndTime scales app/service of ns to replicas and returns how long
// until a task of the new slot runs.
func scaleAndTime(b *testing.B, api berthv1.ClusterServiceClient, ns, app, service string, replicas uint64) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	watch, err := api.Watch(ctx, &berthv1.WatchRequest{Namespace: ns, App: app})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if _, err := api.ScaleService(ctx, &berthv1.ScaleServiceRequest{Namespace: ns, App: app, Service: service, Replicas: replicas}); err != nil {
		b.Fatalf("scale %s/%s/%s to %d: %v", ns, app, service, replicas, err)
	}
	for {
		ev, err := watch.Recv()
		if err != nil {
			b.Fatalf("watching %s/%s: %v", ns, app, err)
		}
		if t := ev.GetTask(); t != nil && t.GetSlot() == replicas && t.GetStatus().GetState() == berthv1.TaskState_TASK_STATE_RUNNING {
			return time.Since(start)
		}
	}
}
