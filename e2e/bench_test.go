package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/berthproject/berth/agent/network"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const benchReplicas = 50

const benchCompose = `
services:
  sleeper:
    image: localhost/busybox:latest
    command: ["sleep", "3600"]
    deploy:
      replicas: %d
`

// BenchmarkApplyToRunning measures `berth apply` of a 50-replica service
// until all 50 tasks run on one node, beside 50 containers created and
// started straight through containerd at the same concurrency, and reports
// the ratio.
func BenchmarkApplyToRunning(b *testing.B) {
	c := newCluster(b)
	c.startAgent("bench", "--cpus", "64", "--memory", "68719476736")
	c.importImage()
	file := c.writeFile("compose.yaml", fmt.Sprintf(benchCompose, benchReplicas))
	api := benchAPI(b, c)

	var berth, raw, rawNet time.Duration
	for i := 0; i < b.N; i++ {
		app := fmt.Sprintf("bench%d", i)
		berth += timeApply(b, c, api, app, file)
		c.mustBerth("delete", app)
		eventually(b, 2*time.Minute, func() (bool, string) {
			n := countContainers(b, nodeID(b, c.dir+"/agent-bench"))
			return n == 0, fmt.Sprintf("%d containers left after delete", n)
		})
		raw += timeRawContainerd(b, benchReplicas, nil)
		rawNet += timeRawContainerd(b, benchReplicas, benchNetwork(b, c.dir))
	}
	b.ReportMetric(float64(berth.Milliseconds())/float64(b.N), "berth-ms/op")
	b.ReportMetric(float64(raw.Milliseconds())/float64(b.N), "containerd-ms/op")
	b.ReportMetric(float64(rawNet.Milliseconds())/float64(b.N), "containerd+net-ms/op")
	b.ReportMetric(float64(berth)/float64(raw), "ratio")
	b.ReportMetric(float64(berth)/float64(rawNet), "ratio-vs-net")
}

// timeApply applies file as app and returns how long until every task ran.
func timeApply(b *testing.B, c *cluster, api berthv1.ClusterServiceClient, app, file string) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	watch, err := api.Watch(ctx, &berthv1.WatchRequest{App: app})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	c.mustBerth("apply", "-f", file, "-p", app)
	running := map[string]bool{}
	for len(running) < benchReplicas {
		ev, err := watch.Recv()
		if err != nil {
			b.Fatalf("watching %s: %v (%d running)", app, err, len(running))
		}
		if t := ev.GetTask(); t != nil && t.GetStatus().GetState() == berthv1.TaskState_TASK_STATE_RUNNING {
			running[t.GetMeta().GetId()] = true
		}
	}
	return time.Since(start)
}

// benchNetwork is a node network like an agent's, for the baseline that
// networks its containers the way Berth does (one interface on one
// network, no published port).
func benchNetwork(b *testing.B, dir string) *network.Node {
	n, err := network.New(network.Config{Name: "bench-raw", NodeID: "bench-raw", DataDir: dir + "/raw-network",
		Subnet: "10.249.0.0/24", ContainerRange: "10.249.0.0/16", Address: "127.0.0.1"})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// benchInterface is container i's place on the baseline's network.
func benchInterface(i int) network.Interface {
	return network.Interface{NetworkID: "bench", Address: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 248, byte(i / 250), byte(1 + i%250)}), 16)}
}

// timeRawContainerd creates and starts n busybox containers at once with
// the containerd client alone (and, with net set, attaches each to it
// first), and removes them afterwards.
func timeRawContainerd(b *testing.B, n int, net *network.Node) time.Duration {
	client, err := containerd.New("/run/containerd/containerd.sock")
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	ctx := namespaces.WithNamespace(context.Background(), namespace)
	image, err := client.GetImage(ctx, "localhost/busybox:latest")
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("raw-%d-%d", time.Now().UnixNano(), i)
	}
	defer func() {
		if net != nil {
			defer func() {
				net.Destroy(context.Background())
				net.Close()
			}()
		}
		for _, id := range ids {
			cont, err := client.LoadContainer(ctx, id)
			if err != nil {
				continue
			}
			if task, err := cont.Task(ctx, nil); err == nil {
				task.Delete(ctx, containerd.WithProcessKill)
			}
			cont.Delete(ctx, containerd.WithSnapshotCleanup)
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			opts := []oci.SpecOpts{oci.WithImageConfig(image), oci.WithProcessArgs("sleep", "3600")}
			if net != nil {
				att, err := net.Attach(ctx, network.AttachSpec{ID: id, Interfaces: []network.Interface{benchInterface(i)}})
				if err != nil {
					errs <- err
					return
				}
				opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: att.NetNSPath}))
			}
			cont, err := client.NewContainer(ctx, id,
				containerd.WithNewSnapshot(id, image),
				containerd.WithNewSpec(opts...))
			if err != nil {
				errs <- err
				return
			}
			task, err := cont.NewTask(ctx, cio.NullIO)
			if err != nil {
				errs <- err
				return
			}
			errs <- task.Start(ctx)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return elapsed
}
