package chaos

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berthproject/berth/agent/network"
	containerd "github.com/containerd/containerd/v2/client"
)

// tasks reads every task of the cluster, finished ones too, by id.
func (c *cluster) tasks() map[string]taskRow {
	c.t.Helper()
	var rows []taskRow
	c.mustJSON(&rows, "ps", "-a")
	out := make(map[string]taskRow, len(rows))
	for _, r := range rows {
		out[r.ID] = r
	}
	return out
}

// services maps each service (APP/SERVICE) to its replicas, as a string
// for the write ledger.
func (c *cluster) services() map[string]string {
	c.t.Helper()
	var rows []struct {
		App, Name string
		Replicas  uint64
	}
	c.mustJSON(&rows, "get", "services")
	out := map[string]string{}
	for _, r := range rows {
		out[r.App+"/"+r.Name] = strconv.FormatUint(r.Replicas, 10)
	}
	return out
}

// ctr is a container as containerd sees it: its id is its task's.
type ctr struct {
	running bool
	pid     uint32
}

// containers reads the cluster's containers from every containerd its
// nodes use, by id: the containerd side of "no task runs twice".
func (c *cluster) containers() map[string]ctr {
	c.t.Helper()
	out := map[string]ctr{}
	for addr := range c.containerds {
		if err := listContainers(addr, c.ctdNS, out); err != nil {
			c.t.Fatalf("listing containers: %v", err)
		}
	}
	return out
}

func listContainers(addr, ns string, into map[string]ctr) error {
	client, err := containerd.New(addr, containerd.WithDefaultNamespace(ns))
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := client.Containers(ctx)
	if err != nil {
		return fmt.Errorf("containerd %s: %w", addr, err)
	}
	for _, cn := range cs {
		var entry ctr
		if task, err := cn.Task(ctx, nil); err == nil {
			if st, err := task.Status(ctx); err == nil && st.Status == containerd.Running {
				entry.running, entry.pid = true, task.Pid()
			}
		}
		into[cn.ID()] = entry
	}
	return nil
}

// runningIDs are the ids of the running containers.
func runningIDs(cs map[string]ctr) []string {
	var out []string
	for id, cn := range cs {
		if cn.running {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// containerNetns lists, by container id, the container network
// namespaces of the cluster's nodes.
func (c *cluster) containerNetns() []string {
	entries, _ := os.ReadDir(network.DefaultNetNSDir)
	var out []string
	for _, e := range entries {
		for _, a := range c.agents {
			if id, ok := strings.CutPrefix(e.Name(), network.NetNSPrefix(a.name)); ok {
				out = append(out, id)
			}
		}
	}
	return out
}

// settle waits until every service runs its replicas, each task in its
// own container (within timeout), and then until nothing runs or holds a
// namespace without a task (within a shorter budget: an agent releases
// them when a container ends, or its sweep does). It counts duplicates (by
// the cluster and by containerd) and orphans into the ledger, and reports
// each.
func (c *cluster) settle(timeout time.Duration) {
	c.t.Helper()
	var tasks map[string]taskRow
	var cs map[string]ctr
	why, ok := poll(timeout, func() (bool, string) {
		tasks, cs = c.tasks(), c.containers()
		live := map[string]int{}
		coming := 0
		for _, t := range tasks {
			if t.live() {
				live[t.App+"/"+t.Service]++
			} else if t.coming() {
				coming++
			}
		}
		for svc, replicas := range c.services() {
			if strconv.Itoa(live[svc]) != replicas {
				return false, fmt.Sprintf("%s runs %d of %s replicas", svc, live[svc], replicas)
			}
		}
		return coming == 0, fmt.Sprintf("%d tasks are meant to run and do not yet", coming)
	})
	if !ok {
		c.t.Errorf("the cluster did not converge: %s", why)
	}
	var orphaned []string
	poll(reps(30*time.Second, 2*time.Minute), func() (bool, string) {
		tasks, cs = c.tasks(), c.containers()
		running := map[string]bool{}
		for id, cn := range cs {
			running[id] = cn.running
		}
		orphaned = orphans(tasks, running, c.containerNetns())
		return len(orphaned) == 0, ""
	})
	var live []string
	for id, t := range tasks {
		if t.live() {
			live = append(live, id)
		}
	}
	dups := duplicateSlots(live, tasks)
	dups = append(dups, duplicateSlots(runningIDs(cs), tasks)...)
	for _, d := range dups {
		c.t.Errorf("duplicate: %s", d)
	}
	for _, o := range orphaned {
		c.t.Errorf("orphan: %s", o)
	}
	tally.add(c.class, counts{duplicates: len(dups), orphans: len(orphaned)})
	c.t.Logf("settled: %d tasks run, %d containers run", len(live), len(runningIDs(cs)))
}

// liveTasks are the ids of the tasks that run, with their slots.
func liveTasks(tasks map[string]taskRow) map[string]string {
	out := map[string]string{}
	for id, t := range tasks {
		if t.live() {
			out[id] = t.slot()
		}
	}
	return out
}

// sameKeys says how two sets of ids differ, or "" when they do not.
func sameKeys[V any](before, after map[string]V) string {
	var gone, added []string
	for id := range before {
		if _, ok := after[id]; !ok {
			gone = append(gone, id)
		}
	}
	for id := range after {
		if _, ok := before[id]; !ok {
			added = append(added, id)
		}
	}
	if len(gone)+len(added) == 0 {
		return ""
	}
	slices.Sort(gone)
	slices.Sort(added)
	return fmt.Sprintf("gone %v, new %v (of %v)", gone, added, slices.Sorted(maps.Keys(before)))
}
