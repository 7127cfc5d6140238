// Package scale measures the control plane with many simulated nodes: the
// real berth server as a child process, and N agents with the fake runtime
// (each a real session stream and gossip member) spread over a few child
// "pool" processes. It applies M tasks, times apply → all running, reads
// the server's metrics, etcd and /proc for the cost, and kills one pool to
// time failure detection.
//
// Programs that use it (the berth-scale command, this package's tests)
// call MaybeRunPool first thing: a pool is the same program started again
// with BERTH_SCALE_POOL set.
package scale

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// DefaultImage is the image the services run; the fake runtime "pulls"
// any image at once.
const DefaultImage = "localhost/busybox:latest"

// Config says what to run and measure.
type Config struct {
	// Bin is the berth binary the server runs from.
	Bin string
	// Nodes and Tasks are the simulated nodes and the tasks applied.
	Nodes, Tasks int
	// Services splits Tasks into that many services of one app; default
	// max(1, Tasks/1000).
	Services int
	// Pools is how many processes run the nodes that are not Victims;
	// default 4, at most Nodes-Victims.
	Pools int
	// Victims is how many nodes run in their own pool, killed with
	// SIGKILL to time failure detection; default max(10, Nodes/100), at
	// most Nodes/2. Negative: no failure detection.
	Victims int
	// JoinConcurrency bounds the agents each pool starts at once; default 16.
	JoinConcurrency int
	// NoPrePull skips pulling the image on every node before the apply;
	// then the first placements favour the nodes that pulled it first.
	NoPrePull bool
	// StartLatency and FailureRate simulate container starts (see
	// fake.Options).
	StartLatency time.Duration
	FailureRate  float64
	// EtcdEndpoints, when set, is an external etcd cluster for the server.
	EtcdEndpoints []string
	// ServerArgs are more flags for `berth server`.
	ServerArgs []string
	// Dir is where the run's temporary directory is made; default the
	// system's.
	Dir string
	// Keep leaves the run's directory (data, logs) in place.
	Keep bool
	// PoolCPUProfile, when set, is a file the first pool writes its CPU
	// profile to (runtime/pprof), from start to stop.
	PoolCPUProfile string
	// PoolHeapProfile, when set, is a file the same pool writes its heap
	// profile to (runtime/pprof) as it stops, its agents still running.
	PoolHeapProfile string
	// ServerCPUProfile, when set, is a file the server's CPU profile is
	// written to: ServerProfileSeconds (default 30) from the apply on,
	// read from the server's /debug/pprof/ (it runs with --profiles).
	ServerCPUProfile     string
	ServerProfileSeconds int
	// Settle, when set, is the longest wait after the nodes joined for
	// the cluster to go quiet (its CPU use to drop) before the apply.
	Settle time.Duration
	// SettleCores is the CPU use (in cores, server and pools) below which
	// the cluster counts as quiet; default 0.25. A thousand nodes' probes
	// and heartbeats alone keep more than that busy.
	SettleCores float64
	// RunningTimeout bounds each wait for tasks to run; default 10 minutes.
	RunningTimeout time.Duration
	// JoinTimeout bounds the wait for every node to join and connect;
	// default 5 minutes.
	JoinTimeout time.Duration
	// Progress receives a line per step; nil discards them.
	Progress io.Writer
	Log      *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.Bin == "" {
		return errors.New("scale: the berth binary is not set: build it with `make build` and pass -bin or BERTH_BIN")
	}
	if c.Nodes < 1 || c.Tasks < 0 {
		return fmt.Errorf("scale: %d nodes and %d tasks: want at least one node and no negative tasks", c.Nodes, c.Tasks)
	}
	if c.FailureRate < 0 || c.FailureRate > 1 {
		return fmt.Errorf("scale: failure rate %v: want a share between 0 and 1", c.FailureRate)
	}
	if c.Services <= 0 {
		c.Services = max(1, c.Tasks/1000)
	}
	c.Services = max(1, min(c.Services, c.Tasks))
	switch {
	case c.Victims < 0:
		c.Victims = 0
	case c.Victims == 0:
		c.Victims = max(10, c.Nodes/100)
	}
	c.Victims = min(c.Victims, c.Nodes/2)
	if c.Pools <= 0 {
		c.Pools = 4
	}
	c.Pools = max(1, min(c.Pools, c.Nodes-c.Victims))
	if c.JoinConcurrency <= 0 {
		c.JoinConcurrency = 16
	}
	if c.JoinTimeout <= 0 {
		c.JoinTimeout = 5 * time.Minute
	}
	if c.RunningTimeout <= 0 {
		c.RunningTimeout = 10 * time.Minute
	}
	if c.ServerProfileSeconds <= 0 {
		c.ServerProfileSeconds = 30
	}
	if c.SettleCores <= 0 {
		c.SettleCores = 0.25
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

// replicas splits tasks over services as evenly as it goes.
func replicas(tasks, services, i int) int {
	n := tasks / services
	if i < tasks%services {
		n++
	}
	return n
}
