package cli

import (
	"cmp"
	"fmt"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// Texts of the placement, resources and rollout parts of `berth describe
// APP/SERVICE`.

// placementText sums up where a service may run: "node.labels.zone==eu;
// spread over node.labels.rack; at most 2 per node; linux/arm64; binpack".
func placementText(spec *berthv1.ServiceSpec) string {
	p := spec.GetPlacement()
	var parts []string
	if cs := p.GetConstraints(); len(cs) > 0 {
		parts = append(parts, strings.Join(cs, ", "))
	}
	if ps := p.GetPreferences(); len(ps) > 0 {
		labels := make([]string, len(ps))
		for i, pref := range ps {
			labels[i] = strings.TrimPrefix(pref, "spread=")
		}
		parts = append(parts, "spread over "+strings.Join(labels, ", "))
	}
	if m := p.GetMaxReplicasPerNode(); m > 0 {
		parts = append(parts, fmt.Sprintf("at most %d per node", m))
	}
	for _, pl := range p.GetPlatforms() {
		parts = append(parts, cmp.Or(pl.GetOs(), "any")+"/"+cmp.Or(pl.GetArchitecture(), "any"))
	}
	if s := enumWord(spec.GetStrategy().String(), "SCHEDULING_STRATEGY_"); s != "" {
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "any node (cluster strategy)"
	}
	return strings.Join(parts, "; ")
}

// resourcesText sums up reservations and limits: "reserves 0.5 cpu, 64 MiB;
// limited to 1 cpu, 128 MiB".
func resourcesText(spec *berthv1.ServiceSpec) string {
	amount := func(r *berthv1.Resources) string {
		var parts []string
		if c := r.GetMilliCpus(); c > 0 {
			parts = append(parts, fmt.Sprintf("%g cpu", float64(c)/1000))
		}
		if m := r.GetMemoryBytes(); m > 0 {
			parts = append(parts, fmt.Sprintf("%d MiB", m>>20))
		}
		return strings.Join(parts, ", ")
	}
	var parts []string
	if s := amount(spec.GetReservations()); s != "" {
		parts = append(parts, "reserves "+s)
	}
	if s := amount(spec.GetLimits()); s != "" {
		parts = append(parts, "limited to "+s)
	}
	return cmp.Or(strings.Join(parts, "; "), "none")
}

// updateConfigText sums up an update_config: "2 at a time, start-first,
// delay 10s, monitor 30s, on failure rollback (max ratio 0.2)". Unset means
// Docker's defaults.
func updateConfigText(c *berthv1.UpdateConfig) string {
	if c == nil {
		return "1 at a time, stop-first, monitor 5s, on failure pause"
	}
	at := "all at once"
	if p := c.GetParallelism(); p > 0 {
		at = fmt.Sprintf("%d at a time", p)
	}
	parts := []string{at, cmp.Or(enumWord(c.GetOrder().String(), "UPDATE_ORDER_"), "stop-first")}
	if d := c.GetDelay(); d.AsDuration() > 0 {
		parts = append(parts, "delay "+durationText(d))
	}
	if m := c.GetMonitor(); m != nil {
		parts = append(parts, "monitor "+durationText(m))
	}
	failure := "on failure " + cmp.Or(enumWord(c.GetFailureAction().String(), "UPDATE_FAILURE_ACTION_"), "pause")
	if r := c.GetMaxFailureRatio(); r > 0 {
		failure += fmt.Sprintf(" (max ratio %g)", r)
	}
	return strings.Join(append(parts, failure), ", ")
}

// rolloutText is the state of the service's last rollout and why:
// "paused: update paused: task web.2 ... failed".
func rolloutText(svc *berthv1.Service) string {
	st := svc.GetUpdateStatus()
	state := enumWord(st.GetState().String(), "UPDATE_STATE_")
	if state == "" {
		return "none since the service was created"
	}
	if msg := st.GetMessage(); msg != "" {
		return state + ": " + msg
	}
	return state
}

// rebalanceText is the state of the service's last rebalance.
func rebalanceText(svc *berthv1.Service) string {
	r := svc.GetRebalance()
	state := enumWord(r.GetState().String(), "REBALANCE_STATE_")
	if state == "" {
		return "never asked"
	}
	if msg := r.GetMessage(); msg != "" {
		return state + ": " + msg
	}
	return state
}
