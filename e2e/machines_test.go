package e2e

import (
	containerd "github.com/containerd/containerd/v2/client"

	"github.com/berthproject/berth/agent/build"
	ctdruntime "github.com/berthproject/berth/agent/runtime/containerd"
	"github.com/berthproject/berth/internal/containerdtest"
)

// startMachine starts an agent with a containerd namespace of its own, as
// if it ran on a machine of its own: the images it holds are its alone, so
// tests of moving images between nodes mean something. Cleanup deletes the
// namespace with everything in it, once the agent has stopped.
func (c *cluster) startMachine(name string, extra ...string) *proc {
	c.t.Helper()
	ns := namespace + "-" + name
	// Registered before the agent starts, so it runs after the agent's
	// own cleanup.
	c.t.Cleanup(func() {
		client, err := containerd.New(ctdruntime.DefaultAddress)
		if err != nil {
			c.t.Errorf("cleanup of machine %s: %v", name, err)
			return
		}
		defer client.Close()
		// BuildKit keeps its build records in a namespace of its own.
		for _, n := range []string{ns, build.HistoryNamespace(ns)} {
			if err := containerdtest.CleanupNamespace(client, n); err != nil {
				c.t.Errorf("cleanup of machine %s: %v", name, err)
			}
			// containerd 1.6 may leave the shims of removed containers
			// running, as TestMain finds for the run's own namespace.
			if _, err := killShims(n); err != nil {
				c.t.Errorf("cleanup of machine %s: %v", name, err)
			}
		}
	})
	return c.startAgent(name, append([]string{"--containerd-namespace", ns}, extra...)...)
}
