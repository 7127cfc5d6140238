package validation

import (
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// The defaults of a rolling update and of a rollback, as Compose users
// know them.
const (
	// DefaultUpdateParallelism replaces one slot at a time.
	DefaultUpdateParallelism = 1
	// DefaultUpdateMonitor is how long a new task's failure still counts
	// against the rollout after it is ready.
	DefaultUpdateMonitor = 5 * time.Second
)

// DefaultUpdateConfig returns the config a service whose spec has no
// update_config (or no rollback_config) rolls out with: parallelism 1, no
// delay, pause on failure, monitor 5s, no failure tolerated, stop-first.
// A nil config in a spec means this one.
func DefaultUpdateConfig() *berthv1.UpdateConfig {
	c := &berthv1.UpdateConfig{Parallelism: DefaultUpdateParallelism}
	normalizeUpdateConfig(c)
	return c
}

// normalizeUpdateConfig states the defaults of a config that is set: no
// delay, pause, monitor 5s, stop-first. A nil config stays nil (it means
// every default), and parallelism stays as written, since 0 there means
// all at once.
func normalizeUpdateConfig(c *berthv1.UpdateConfig) {
	if c == nil {
		return
	}
	if c.Delay == nil {
		c.Delay = durationpb.New(0)
	}
	if c.FailureAction == berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_UNSPECIFIED {
		c.FailureAction = berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE
	}
	if c.Monitor == nil {
		c.Monitor = durationpb.New(DefaultUpdateMonitor)
	}
	if c.Order == berthv1.UpdateOrder_UPDATE_ORDER_UNSPECIFIED {
		c.Order = berthv1.UpdateOrder_UPDATE_ORDER_STOP_FIRST
	}
}

// updateConfig checks deploy.update_config, or deploy.rollback_config when
// rollback is set (field names which).
//
// A global service that publishes host ports and updates start-first is
// accepted: its new task cannot bind the ports its old one holds on the
// same node, so it will not start until the old one stops. That is for
// the orchestrator to handle, and such a service is better off
// stop-first; it is not an error in the spec.
func (v *specValidator) updateConfig(field string, c *berthv1.UpdateConfig, rollback bool) {
	if c == nil {
		return
	}
	switch a := c.GetFailureAction(); a {
	case berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_UNSPECIFIED, berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE,
		berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_CONTINUE:
	case berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK:
		if rollback {
			v.add(field+".failure_action", "rollback is not valid in rollback_config: a failed rollback has no earlier spec to return to; use pause or continue")
		}
	default:
		v.add(field+".failure_action", fmt.Sprintf("unknown failure action %d; use pause, continue or rollback", a))
	}
	switch o := c.GetOrder(); o {
	case berthv1.UpdateOrder_UPDATE_ORDER_UNSPECIFIED, berthv1.UpdateOrder_UPDATE_ORDER_STOP_FIRST,
		berthv1.UpdateOrder_UPDATE_ORDER_START_FIRST:
	default:
		v.add(field+".order", fmt.Sprintf("unknown order %d; use stop-first or start-first", o))
	}
	if r := c.GetMaxFailureRatio(); math.IsNaN(r) || r < 0 || r > 1 {
		v.add(field+".max_failure_ratio", fmt.Sprintf("%g is outside 0 to 1; give the share of tasks that may fail, like 0.2 for one in five", r))
	}
	v.duration(field+".delay", c.GetDelay())
	v.duration(field+".monitor", c.GetMonitor())
}
