package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// trustBenchRounds is how many task starts each side of the benchmark
// times.
const trustBenchRounds = 12

// BenchmarkTaskStartTrusted times task starts (scale by one, from the
// call to the task running) of a signed image in a namespace whose trust
// policy covers it, with the verification cached on the server and the
// node, beside the same image in a namespace without a policy; starts
// alternate between the two. It reports the p50 of each and their ratio
// (goal: at most 1.05).
func BenchmarkTaskStartTrusted(b *testing.B) {
	reg := startRegistry(b, "", "")
	c := newCluster(b)
	c.startMachine("alpha", "--cpus", "64", "--memory", "68719476736")
	c.mustBerth("cluster", "settings", "--insecure-registry", reg.host)
	image := reg.host + "/team/app:1"
	c.pushTestImage(image, "alpha")
	c.mustBerth("namespace", "create", "trusted")
	if out, err := c.berthIn(c.dir, "-n", "trusted", "key", "generate", "release"); err != nil {
		b.Fatalf("key generate: %v\n%s", err, out)
	}
	c.mustBerth("-n", "trusted", "sign", image, "--key", "release")
	c.mustBerth("-n", "trusted", "trust", "set", reg.host+"/team/*", "--key", "release")
	file := c.writeFile("bench/compose.yaml", fmt.Sprintf(trustCompose, image))
	// The first task of each verifies once (trusted) and fills the caches.
	c.mustBerth("-n", "trusted", "apply", "-f", file, "-p", "bench")
	c.mustBerth("apply", "-f", file, "-p", "bench")
	c.waitRunning("bench/web", 1, 2*time.Minute)
	eventually(b, 2*time.Minute, func() (bool, string) {
		tasks := c.ps("-n", "trusted", "bench")
		return len(tasks) == 1 && tasks[0].State == "running", fmt.Sprintf("trusted tasks: %+v", tasks)
	})
	api := benchAPI(b, c)

	for range b.N {
		var trusted, plain []time.Duration
		for i := range trustBenchRounds {
			replicas := uint64(i + 2)
			trusted = append(trusted, scaleAndTime(b, api, "trusted", "bench", "web", replicas))
			plain = append(plain, scaleAndTime(b, api, "default", "bench", "web", replicas))
		}
		p50t, p50p := p50(trusted), p50(plain)
		b.ReportMetric(float64(p50t.Microseconds())/1000, "trusted-p50-ms")
		b.ReportMetric(float64(p50p.Microseconds())/1000, "plain-p50-ms")
		b.ReportMetric(float64(p50t)/float64(p50p), "ratio")
		c.mustBerth("-n", "trusted", "scale", "bench/web=1")
		c.mustBerth("scale", "bench/web=1")
		c.waitRunning("bench/web", 1, 2*time.Minute)
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
