package cli

import (
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestDescribeRolloutTexts(t *testing.T) {
	spec := &berthv1.ServiceSpec{
		Placement: &berthv1.Placement{
			Constraints:        []string{"node.labels.zone==eu"},
			Preferences:        []string{"spread=node.labels.rack"},
			MaxReplicasPerNode: 2,
			Platforms:          []*berthv1.Platform{{Os: "linux", Architecture: "arm64"}},
		},
		Strategy:     berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK,
		Reservations: &berthv1.Resources{MilliCpus: 500, MemoryBytes: 64 << 20},
		Limits:       &berthv1.Resources{MilliCpus: 1000},
	}
	svc := &berthv1.Service{UpdateStatus: &berthv1.UpdateStatus{
		State: berthv1.UpdateState_UPDATE_STATE_PAUSED, Message: "update paused: task web.2 (abc) failed: exit code 1",
	}}
	for _, tc := range []struct{ name, got, want string }{
		{"placement", placementText(spec), "node.labels.zone==eu; spread over node.labels.rack; at most 2 per node; linux/arm64; binpack"},
		{"no placement", placementText(&berthv1.ServiceSpec{}), "any node (cluster strategy)"},
		{"resources", resourcesText(spec), "reserves 0.5 cpu, 64 MiB; limited to 1 cpu"},
		{"no resources", resourcesText(&berthv1.ServiceSpec{}), "none"},
		{"default update", updateConfigText(nil), "1 at a time, stop-first, monitor 5s, on failure pause"},
		{"update", updateConfigText(&berthv1.UpdateConfig{
			Parallelism: 2, Order: berthv1.UpdateOrder_UPDATE_ORDER_START_FIRST, Delay: durationpb.New(10 * time.Second),
			Monitor: durationpb.New(30 * time.Second), FailureAction: berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK, MaxFailureRatio: 0.2,
		}), "2 at a time, start-first, delay 10s, monitor 30s, on failure rollback (max ratio 0.2)"},
		{"all at once", updateConfigText(&berthv1.UpdateConfig{}), "all at once, stop-first, on failure pause"},
		{"rollout", rolloutText(svc), "paused: update paused: task web.2 (abc) failed: exit code 1"},
		{"no rollout", rolloutText(&berthv1.Service{}), "none since the service was created"},
		{"rebalance", rebalanceText(&berthv1.Service{Rebalance: &berthv1.RebalanceStatus{State: berthv1.RebalanceState_REBALANCE_STATE_COMPLETED, Message: "moved 2 tasks"}}), "completed: moved 2 tasks"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}
