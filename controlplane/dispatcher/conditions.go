package dispatcher

import (
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/nodestate"
)

// This file keeps the node record's conditions (what its agent checked of
// itself) as the hello and the heartbeats report them, and records an
// event when a node stops or starts again being able to run containers.
// A heartbeat carries conditions only when one changed, and they are
// written at once: a node that cannot run containers must stop getting
// tasks now.

// mergeConditions is what to store of reported conditions: the agent's
// own, except that a condition whose ok is the same as stored keeps the
// stored since (an agent restarted knows only its own start). A stored
// type the report lacks is kept: an agent's hello comes before it knows
// its subnet, so it has not judged its network yet.
func mergeConditions(stored, reported []*berthv1.NodeCondition) []*berthv1.NodeCondition {
	old := make(map[string]*berthv1.NodeCondition, len(stored))
	for _, c := range stored {
		old[c.GetType()] = c
	}
	out := make([]*berthv1.NodeCondition, 0, len(reported))
	for _, c := range reported {
		next := &berthv1.NodeCondition{Type: c.GetType(), Ok: c.GetOk(), Message: c.GetMessage(), Since: c.GetSince()}
		if o, ok := old[c.GetType()]; ok && o.GetOk() == c.GetOk() && o.GetSince() != nil {
			next.Since = o.GetSince()
		}
		out = append(out, next)
		delete(old, c.GetType())
	}
	for _, c := range stored {
		if _, missing := old[c.GetType()]; missing {
			out = append(out, c)
		}
	}
	return out
}

// conditionEvent is the event of a node's conditions going from old's to
// n's: "node X is not ready: REASON" when a condition started failing (or
// the reason changed), "node X is ready again" when the last failing one
// passed; nil when neither.
func conditionEvent(old, n *berthv1.Node) *berthv1.Event {
	was, is := nodestate.Reason(old), nodestate.Reason(n)
	if was == is {
		return nil
	}
	ev := &berthv1.Event{Kind: "node", ObjectId: n.GetMeta().GetId(), Attributes: map[string]string{"node": n.GetName()}}
	if is == "" {
		ev.Action, ev.Message = "ready", "node "+n.GetName()+" is ready again"
		ev.Attributes["was"] = was
		return ev
	}
	ev.Action, ev.Message = "not-ready", "node "+n.GetName()+" is not ready: "+is
	ev.Attributes["reason"] = is
	return ev
}
