// Package slot is Berth's slot model: the places a service wants a task
// in, the tasks each place holds, and whether a place has settled. The
// orchestrator, the dependency checks (depends_on) and the CLI's
// `apply --wait` and `rollout status` all use it, so they never disagree on
// which slots a service wants or whether one is done.
//
// A replicated service wants slots 1 to replicas; a global service wants
// one slot per node ("node:ID"). Which nodes is up to the caller: the
// orchestrator knows the eligible nodes, an observer sees where tasks are
// meant to run.
package slot

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
)

// Slot is one place a service wants a task in.
type Slot struct {
	// Key is the slot's key, as taskstate.Slot gives it for its tasks:
	// "2", or "node:ID" for a global service.
	Key string
	// Number is the replica number of a replicated service's slot; 0 for
	// a global service's.
	Number uint64
	// Node is the node of a global service's slot; "" for a replicated
	// service's.
	Node string
	// Tasks are every task the slot holds, newest first.
	Tasks []*berthv1.Task
}

// Group sorts tasks into their slots by key, each slot's tasks newest
// first.
func Group(tasks []*berthv1.Task) map[string][]*berthv1.Task {
	// Sized up front: services of thousands of tasks spent more time
	// growing the map than grouping.
	out := make(map[string][]*berthv1.Task, len(tasks))
	for _, t := range tasks {
		k := taskstate.Slot(t)
		out[k] = append(out[k], t)
	}
	for _, ts := range out {
		SortNewestFirst(ts)
	}
	return out
}

// SortNewestFirst orders a slot's tasks newest first: by creation time,
// then by ID so that equal times order the same way everywhere.
func SortNewestFirst(ts []*berthv1.Task) {
	slices.SortFunc(ts, newerFirst)
}

func newerFirst(a, b *berthv1.Task) int {
	return cmp.Or(b.GetMeta().GetCreatedAt().AsTime().Compare(a.GetMeta().GetCreatedAt().AsTime()),
		strings.Compare(b.GetMeta().GetId(), a.GetMeta().GetId()))
}

// Wanted lists the slots svc wants, in order, with their tasks from
// groups (Group's result). A global service wants a slot on each of
// nodes (IDs) when nodes is not nil; with nil, on each node where one of
// its tasks in groups is meant to run, which is what an observer of the
// tasks can tell.
func Wanted(svc *berthv1.Service, groups map[string][]*berthv1.Task, nodes []string) []Slot {
	if svc.GetSpec().GetMode() != berthv1.ServiceMode_SERVICE_MODE_GLOBAL {
		n := svc.GetSpec().GetReplicas()
		out := make([]Slot, 0, n)
		for i := uint64(1); i <= n; i++ {
			k := strconv.FormatUint(i, 10)
			out = append(out, Slot{Key: k, Number: i, Tasks: groups[k]})
		}
		return out
	}
	if nodes == nil {
		for _, ts := range groups {
			for _, t := range ts {
				if t.GetSlot() == 0 && t.GetNodeId() != "" && t.GetDesiredState() == berthv1.TaskState_TASK_STATE_RUNNING {
					nodes = append(nodes, t.GetNodeId())
					break
				}
			}
		}
	}
	nodes = slices.Clone(nodes)
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)
	out := make([]Slot, 0, len(nodes))
	for _, id := range nodes {
		k := NodeKey(id)
		out = append(out, Slot{Key: k, Node: id, Tasks: groups[k]})
	}
	return out
}

// NodeKey is the key of a global service's slot on node id.
func NodeKey(id string) string { return "node:" + id }

// Current are the slot's tasks that run version, the service's current
// spec version, newest first.
func (s Slot) Current(version uint64) []*berthv1.Task {
	var out []*berthv1.Task
	for _, t := range s.Tasks {
		if t.GetSpecVersion() == version {
			out = append(out, t)
		}
	}
	return out
}

// Other is the newest task of the slot that is meant to run another
// version than version: what runs there while an update has not reached
// the slot. Nil when there is none.
func (s Slot) Other(version uint64) *berthv1.Task {
	for _, t := range s.Tasks {
		if t.GetSpecVersion() != version && t.GetDesiredState() == berthv1.TaskState_TASK_STATE_RUNNING {
			return t
		}
	}
	return nil
}

// Of is the slot with key when svc wants it, as Wanted would list it, with
// its tasks from groups; nodes are as for Wanted, but must be given for a
// global service. It costs the same whatever the service's size: a pass
// over the slots that changed uses it.
func Of(svc *berthv1.Service, groups map[string][]*berthv1.Task, key string, nodes []string) (Slot, bool) {
	if svc.GetSpec().GetMode() == berthv1.ServiceMode_SERVICE_MODE_GLOBAL {
		id, ok := strings.CutPrefix(key, "node:")
		if !ok || !slices.Contains(nodes, id) {
			return Slot{}, false
		}
		return Slot{Key: key, Node: id, Tasks: groups[key]}, true
	}
	n, err := strconv.ParseUint(key, 10, 64)
	if err != nil || n < 1 || n > svc.GetSpec().GetReplicas() || strconv.FormatUint(n, 10) != key {
		return Slot{}, false
	}
	return Slot{Key: key, Number: n, Tasks: groups[key]}, true
}
