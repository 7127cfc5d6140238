package chaos

import (
	"fmt"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"slices"
	"sort"
	"strings"
)

// This file holds the suite's verdicts as pure functions: listings in,
// findings out. The subtests gather the listings from the CLI, containerd
// and /run/netns.

// taskRow is one row of `berth ps -a -o json`.
type taskRow struct {
	ID           string `json:"id"`
	App          string `json:"app"`
	Service      string `json:"service"`
	Slot         uint64 `json:"slot"`
	Node         string `json:"node"`
	State        string `json:"state"`
	DesiredState string `json:"desiredState"`
	Error        string `json:"error"`
	Message      string `json:"message"`
}

func (r taskRow) slot() string { return fmt.Sprintf("%s/%s.%d", r.App, r.Service, r.Slot) }

func (r taskRow) live() bool { return r.State == "running" && r.DesiredState == "running" }

// coming reports whether the task is meant to run and is on its way.
func (r taskRow) coming() bool {
	return r.DesiredState == "running" && r.State != "running" && !terminalStates[r.State]
}

// terminalStates are the words `berth ps` shows for states a task never
// leaves, from api/taskstate.
var terminalStates = func() map[string]bool {
	out := map[string]bool{}
	for v := range berthv1.TaskState_name {
		if s := berthv1.TaskState(v); taskstate.Terminal(s) {
			out[taskstate.Name(s)] = true
		}
	}
	return out
}()

// write is one change the suite asked for: the value a key should have
// afterwards ("" for gone), and whether the cluster acknowledged it.
type write struct {
	Key, Value string
	Acked      bool
}

// lostWrites returns the acknowledged writes that the final state does
// not show. A key's final value must be the last acknowledged one, or
// that of a later write that failed: a write whose answer was lost (the
// server died) may still have been applied. final maps each key to its
// value ("" or absent for gone).
func lostWrites(writes []write, final map[string]string) []string {
	var lost []string
	lastAcked := map[string]int{}
	for i, w := range writes {
		if w.Acked {
			lastAcked[w.Key] = i
		}
	}
	keys := make([]string, 0, len(lastAcked))
	for k := range lastAcked {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		i := lastAcked[k]
		ok := final[k] == writes[i].Value
		for _, later := range writes[i+1:] {
			ok = ok || (later.Key == k && final[k] == later.Value)
		}
		if !ok {
			lost = append(lost, fmt.Sprintf("%s: acknowledged %q, now %q", k, writes[i].Value, final[k]))
		}
	}
	return lost
}

// duplicateSlots returns the slots that more than one of running holds:
// running are the task ids seen running (by the cluster or by
// containerd), tasks every task by id.
func duplicateSlots(running []string, tasks map[string]taskRow) []string {
	holders := map[string][]string{}
	for _, id := range running {
		if t, ok := tasks[id]; ok {
			holders[t.slot()] = append(holders[t.slot()], id)
		}
	}
	var dups []string
	for slot, ids := range holders {
		if len(ids) > 1 {
			slices.Sort(ids)
			dups = append(dups, fmt.Sprintf("slot %s runs %d times: %s", slot, len(ids), strings.Join(ids, ", ")))
		}
	}
	sort.Strings(dups)
	return dups
}

// orphans returns, after convergence, what has no owner: running
// containers whose task does not exist or should not run, tasks that
// claim to run with no container under them, and container network
// namespaces (by container id) of no running container.
func orphans(tasks map[string]taskRow, containers map[string]bool, netns []string) []string {
	var out []string
	for id, running := range containers {
		if t, ok := tasks[id]; running && (!ok || t.DesiredState != "running") {
			out = append(out, fmt.Sprintf("container %s runs for task %s in state %q (desired %q)", id, id, t.State, t.DesiredState))
		}
	}
	for id, t := range tasks {
		if t.live() && !containers[id] {
			out = append(out, fmt.Sprintf("task %s (%s on %s) is running with no running container", id, t.slot(), t.Node))
		}
	}
	for _, id := range netns {
		if !containers[id] {
			out = append(out, "network namespace of container "+id+", which does not run")
		}
	}
	sort.Strings(out)
	return out
}
