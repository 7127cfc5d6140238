package orchestrator

import (
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/nodestate"
)

// DefaultNotReadyGrace is how long a node may fail a condition (its
// runtime, network or disk) before its replicated tasks move elsewhere: a
// containerd restart or a disk briefly full should not reshuffle the
// cluster, a broken node should not hold tasks for long.
const DefaultNotReadyGrace = 30 * time.Second

// WithNotReadyGrace sets how long a node may stay not ready (connected,
// failing a condition) before its tasks move; 0 or less keeps the
// default.
func WithNotReadyGrace(d time.Duration) Option {
	return func(o *Orchestrator) {
		if d > 0 {
			o.notReadyGrace = d
		}
	}
}

// notReadyNodes are the nodes whose replicated tasks move elsewhere, as
// from a drained node: connected but not ready (a failing condition) for
// longer than grace, each with why. wake is when the grace of the next
// node still within it ends (zero for none), so that the orchestrator
// looks again then rather than polling.
func notReadyNodes(nodes []*berthv1.Node, now time.Time, grace time.Duration) (moving map[string]string, wake time.Time) {
	if grace <= 0 {
		grace = DefaultNotReadyGrace
	}
	for _, n := range nodes {
		since, notReady := nodestate.NotReadySince(n)
		if !notReady {
			continue
		}
		if end := since.Add(grace); end.After(now) {
			wake = earliest(wake, end)
			continue
		}
		if moving == nil {
			moving = map[string]string{}
		}
		moving[n.GetMeta().GetId()] = "its node has not been ready for " + grace.String() + " (" + nodestate.Reason(n) + ")"
	}
	return moving, wake
}
