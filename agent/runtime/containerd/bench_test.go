package containerd

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/cio"

	"github.com/berthproject/berth/agent/files"
	"github.com/berthproject/berth/agent/runtime"
)

// startsPerKind is how many containers of each kind one benchmark run
// starts; the p50 of that many is steady on a 2-core machine.
const startsPerKind = 15

// BenchmarkContainerStartWithStorage compares the create-and-start time of
// a plain container with one that has two secrets, a config and a new
// named volume (issue 14's goal: a p50 ratio of at most 1.1). The two
// kinds alternate so that the machine's drift affects both alike. It
// prints the p50 of each and their ratio.
func BenchmarkContainerStartWithStorage(b *testing.B) {
	env := newTestEnv(b, nil)
	ctx := context.Background()
	withStorage := func(i int) runtime.ContainerSpec {
		return runtime.ContainerSpec{
			Namespace: "bench",
			Mounts:    []runtime.Mount{{Type: runtime.MountVolume, Source: fmt.Sprintf("data.%d", i), Target: "/data"}},
			Files: []files.File{
				{Target: "/run/secrets/db_password", Data: []byte("hunter2"), Mode: 0o400, Secret: true, Name: "db_password"},
				{Target: "/run/secrets/api_key", Data: []byte("k3y"), Mode: 0o400, Secret: true, Name: "api_key"},
				{Target: "/etc/app.conf", Data: []byte("max=10\n"), Mode: 0o444, Name: "settings"},
			},
		}
	}
	start := func(b *testing.B, id string, spec runtime.ContainerSpec) time.Duration {
		spec.ID, spec.Image, spec.Command = id, busyboxRef, []string{"sleep", "60"}
		began := time.Now()
		if err := env.rt.Create(ctx, spec); err != nil {
			b.Fatalf("Create(%s): %v", id, err)
		}
		if _, err := env.rt.Start(ctx, id); err != nil {
			b.Fatalf("Start(%s): %v", id, err)
		}
		took := time.Since(began)
		if err := env.rt.Stop(ctx, id, "SIGKILL", 0); err != nil {
			b.Fatalf("Stop(%s): %v", id, err)
		}
		if err := env.rt.Remove(ctx, id); err != nil {
			b.Fatalf("Remove(%s): %v", id, err)
		}
		return took
	}
	for n := 0; n < b.N; n++ {
		var plain, stored []time.Duration
		for i := range startsPerKind {
			plain = append(plain, start(b, fmt.Sprintf("plain-%d-%d", n, i), runtime.ContainerSpec{}))
			stored = append(stored, start(b, fmt.Sprintf("stored-%d-%d", n, i), withStorage(n*startsPerKind+i)))
		}
		p50Plain, p50Stored := median(plain), median(stored)
		ratio := float64(p50Stored) / float64(p50Plain)
		b.ReportMetric(float64(p50Plain.Microseconds())/1000, "plain-p50-ms")
		b.ReportMetric(float64(p50Stored.Microseconds())/1000, "storage-p50-ms")
		b.ReportMetric(ratio, "p50-ratio")
		fmt.Printf("container start (create+start, %d each): plain p50 %v, with 2 secrets + 1 config + 1 new volume p50 %v, ratio %.2f (goal <= 1.1)\n",
			startsPerKind, p50Plain.Round(100*time.Microsecond), p50Stored.Round(100*time.Microsecond), ratio)
	}
}

// median returns the middle of ds.
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkTaskStartLogDriver compares starting a container's task with
// its output going to berth's json-file log driver (a process the shim
// starts beside the container) and to a plain file the shim writes, as
// before: what the driver costs at each start. The two kinds alternate;
// it prints the p50 of each.
func BenchmarkTaskStartLogDriver(b *testing.B) {
	env := newTestEnv(b, nil)
	ctx := env.rt.ctx(context.Background())
	start := func(b *testing.B, id string, driver bool) time.Duration {
		if err := env.rt.Create(ctx, runtime.ContainerSpec{ID: id, Image: busyboxRef, Command: []string{"sleep", "60"}}); err != nil {
			b.Fatalf("Create(%s): %v", id, err)
		}
		defer func() {
			if err := env.rt.Remove(context.Background(), id); err != nil {
				b.Fatalf("Remove(%s): %v", id, err)
			}
		}()
		cont, err := env.rt.Client().LoadContainer(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		creator := cio.LogFile(env.rt.logPath(id))
		if driver {
			creator = env.rt.logIO(id, nil)
		}
		began := time.Now()
		task, err := cont.NewTask(ctx, creator)
		if err != nil {
			b.Fatalf("NewTask(%s): %v", id, err)
		}
		if err := task.Start(ctx); err != nil {
			b.Fatalf("Start(%s): %v", id, err)
		}
		return time.Since(began)
	}
	for n := 0; n < b.N; n++ {
		var plain, driven []time.Duration
		for i := range startsPerKind {
			plain = append(plain, start(b, fmt.Sprintf("file-%d-%d", n, i), false))
			driven = append(driven, start(b, fmt.Sprintf("driver-%d-%d", n, i), true))
		}
		p50Plain, p50Driven := median(plain), median(driven)
		b.ReportMetric(float64(p50Plain.Microseconds())/1000, "file-p50-ms")
		b.ReportMetric(float64(p50Driven.Microseconds())/1000, "driver-p50-ms")
		fmt.Printf("task start (new task + start, %d each): shim writes a file p50 %v, json-file log driver p50 %v\n",
			startsPerKind, p50Plain.Round(100*time.Microsecond), p50Driven.Round(100*time.Microsecond))
	}
}
