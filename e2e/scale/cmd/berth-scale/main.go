// Command berth-scale measures a berth server with many simulated nodes
// (see package scale) and prints a table that ends with the lines
// "server-cpu-s/1k-tasks: X" and "tasks/s: X". `make bench-scale NODES=N TASKS=M` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/berthproject/berth/e2e/scale"
)

func main() {
	scale.MaybeRunPool()
	bin := os.Getenv("BERTH_BIN")
	if bin == "" {
		bin = "bin/berth"
	}
	var cfg scale.Config
	var etcd, serverFlags string
	flag.StringVar(&cfg.Bin, "bin", bin, "the berth binary the server runs from (default $BERTH_BIN, else bin/berth)")
	flag.IntVar(&cfg.Nodes, "nodes", 1000, "simulated nodes")
	flag.IntVar(&cfg.Tasks, "tasks", 100000, "tasks to apply")
	flag.IntVar(&cfg.Services, "services", 0, "services the tasks are split over (default tasks/1000)")
	flag.IntVar(&cfg.Pools, "pools", 4, "processes running the simulated nodes, besides the victim pool")
	flag.IntVar(&cfg.Victims, "victims", 0, "nodes killed to time failure detection (default max(10, nodes/100); -1: none)")
	flag.IntVar(&cfg.JoinConcurrency, "join-concurrency", 16, "agents each pool starts at once")
	flag.DurationVar(&cfg.StartLatency, "start-latency", 0, "how long each simulated container start takes")
	flag.Float64Var(&cfg.FailureRate, "failure-rate", 0, "share of simulated container starts (0 to 1) that fail, the container exiting with code 1")
	flag.StringVar(&etcd, "etcd", "", "comma-separated endpoints of an external etcd cluster (default: the server's embedded one)")
	flag.StringVar(&serverFlags, "server-flags", "", "more flags for `berth server`, space-separated (like \"--gossip-probe-interval 1s\")")
	flag.BoolVar(&cfg.NoPrePull, "no-prepull", false, "skip pulling the image on every node before the apply")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the run's directory (server and pool logs, data)")
	flag.StringVar(&cfg.PoolCPUProfile, "cpuprofile-pool", "", "write a CPU profile of one (non-victim) pool to this file")
	flag.StringVar(&cfg.PoolHeapProfile, "memprofile-pool", "", "write a heap profile of the same pool to this file as it stops")
	flag.StringVar(&cfg.ServerCPUProfile, "cpuprofile-server", "", "write the server's CPU profile over -profile-seconds from the apply on to this file")
	flag.IntVar(&cfg.ServerProfileSeconds, "profile-seconds", 30, "with -cpuprofile-server: how many seconds of the apply to profile")
	flag.DurationVar(&cfg.Settle, "settle", 0, "wait at most this long after the nodes joined for the cluster's CPU use to drop before the apply (0: apply at once)")
	flag.Float64Var(&cfg.SettleCores, "settle-cores", 0, "with -settle: the CPU use (cores, server and pools) under which the cluster counts as quiet (default 0.25)")
	flag.DurationVar(&cfg.RunningTimeout, "timeout", 0, "how long to wait for all tasks to run (default 10m)")
	flag.DurationVar(&cfg.JoinTimeout, "join-timeout", 0, "how long to wait for every node to join and connect (default 5m)")
	flag.Parse()
	if etcd != "" {
		cfg.EtcdEndpoints = strings.Split(etcd, ",")
	}
	cfg.ServerArgs = strings.Fields(serverFlags)
	cfg.Progress = os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := scale.Run(ctx, cfg)
	if r != nil {
		r.Write(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "berth-scale:", err)
		fmt.Println("server-cpu-s/1k-tasks: 0")
		fmt.Println("tasks/s: 0")
		os.Exit(1)
	}
	fmt.Printf("server-cpu-s/1k-tasks: %.3f\n", r.ServerCPUPer1kTasks())
	fmt.Printf("tasks/s: %.0f\n", r.TasksPerSecond())
}
