package nodehealth

import (
	"fmt"
	"time"
)

// Guard keeps a failure of the control plane's own network from looking
// like the failure of every node. When more than Share of the nodes lose
// contact within Window of each other, the likelier story is that the
// control plane was cut off, not that half the machines died at once:
// the nodes are marked unreachable but none goes down (so the
// orchestrator orphans and replaces nothing) until contact returns or an
// operator confirms them down (`berth node down`). Kubernetes' node
// lifecycle controller stops evicting in a zone that is fully disrupted
// for the same reason.
type Guard struct {
	// Share of the counted nodes that must lose contact at once; 0 or
	// less turns the guard off.
	Share float64
	// MinNodes is the fewest counted nodes the guard applies to: in a
	// cluster of two, one lost node is half of it, and most likely dead.
	MinNodes int
	// Window is how close together the losses must be to count as one.
	Window time.Duration
}

// Defaults of the guard.
const (
	DefaultGuardShare    = 0.5
	DefaultGuardMinNodes = 3
)

// Contact is one node's contact with the control plane, as the guard
// counts it.
type Contact struct {
	// Counted: the node belongs to the population (it is ready or
	// unreachable, or went down within the window). Nodes down for longer,
	// or never connected, are not counted.
	Counted bool
	// Lost: the node is out of contact (its session is lost or silent, or
	// gossip says it died), since Since.
	Lost  bool
	Since time.Time
}

// Holds decides whether the guard holds at now, given each node's contact
// and whether it held before. It engages when more than Share of the
// counted nodes lost contact within the last Window; once engaged it holds
// while more than half that share are still out of contact, however long
// ago they lost it, and lifts when contact returned to most of them. The
// gap keeps a cluster near the threshold (nodes starved of CPU, coming
// and going) from engaging and lifting on every judgement.
func (g Guard) Holds(nodes []Contact, now time.Time, held bool) bool {
	counted, lost, recent := g.count(nodes, now)
	if g.Share <= 0 || counted < g.MinNodes || counted == 0 {
		return false
	}
	limit := g.Share * float64(counted)
	if held {
		return float64(lost) > limit/2
	}
	return float64(recent) > limit
}

// count returns the counted nodes, those out of contact, and those that
// lost it within the window.
func (g Guard) count(nodes []Contact, now time.Time) (counted, lost, recent int) {
	for _, c := range nodes {
		if !c.Counted {
			continue
		}
		counted++
		if !c.Lost {
			continue
		}
		lost++
		if now.Sub(c.Since) <= g.Window {
			recent++
		}
	}
	return counted, lost, recent
}

// engagedWords is the log line and event of the guard engaging.
func engagedWords(lost, counted int) string {
	return fmt.Sprintf("%d of %d nodes lost contact at once; assuming the control plane's network failed; "+
		"no tasks are replaced until contact returns or `berth node down` confirms nodes down", lost, counted)
}

// liftedWords is the log line and event of the guard lifting.
func liftedWords(lost, counted int) string {
	return fmt.Sprintf("contact returned: %d of %d nodes out of contact; nodes still out of contact go down after the grace", lost, counted)
}

// heldMessage is the status message of a node kept unreachable by the
// guard.
const heldMessage = "not down: most nodes lost contact at once, so the control plane's network is suspect (`berth node down` confirms it down)"
