package nodestate

import (
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestWordsAndReadiness(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	ready := berthv1.NodeStatus_NODE_STATUS_READY
	diskFull := &berthv1.NodeCondition{Type: Disk, Message: "12 MiB free", Since: timestamppb.New(t0.Add(time.Minute))}
	netBad := &berthv1.NodeCondition{Type: Network, Message: "10.210.0.0/24 is on br0", Since: timestamppb.New(t0)}
	ok := &berthv1.NodeCondition{Type: Runtime, Ok: true, Since: timestamppb.New(t0)}
	for _, tc := range []struct {
		name  string
		node  *berthv1.Node
		words string
		ready bool
		since time.Time
	}{
		{"ready", &berthv1.Node{Status: ready, Conditions: []*berthv1.NodeCondition{ok}}, "ready", true, time.Time{}},
		{"no conditions yet", &berthv1.Node{Status: ready}, "ready", true, time.Time{}},
		{"one failing", &berthv1.Node{Status: ready, Conditions: []*berthv1.NodeCondition{ok, diskFull}}, "not ready (disk: 12 MiB free)", false, t0.Add(time.Minute)},
		{"two failing: the first named, the earliest since", &berthv1.Node{Status: ready, Conditions: []*berthv1.NodeCondition{diskFull, netBad}}, "not ready (disk: 12 MiB free)", false, t0},
		{"unreachable hides conditions", &berthv1.Node{Status: berthv1.NodeStatus_NODE_STATUS_UNREACHABLE, Conditions: []*berthv1.NodeCondition{diskFull}}, "unreachable", false, time.Time{}},
		{"down", &berthv1.Node{Status: berthv1.NodeStatus_NODE_STATUS_DOWN}, "down", false, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Words(tc.node); got != tc.words {
				t.Errorf("Words = %q, want %q", got, tc.words)
			}
			if got := Ready(tc.node); got != tc.ready {
				t.Errorf("Ready = %v, want %v", got, tc.ready)
			}
			since, notReady := NotReadySince(tc.node)
			if notReady != !since.IsZero() || !since.Equal(tc.since) {
				t.Errorf("NotReadySince = %v, %v; want %v", since, notReady, tc.since)
			}
		})
	}
}
