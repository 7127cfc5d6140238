package session

import (
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// TestHeartbeatCarriesChangedConditionsOnce: changed conditions go out
// in the next heartbeat, marked changed, and not in the one after.
func TestHeartbeatCarriesChangedConditionsOnce(t *testing.T) {
	s := &Session{ready: make(chan struct{}, 1)}
	if s.heartbeatPending() {
		t.Fatal("a heartbeat is pending before anything changed")
	}
	conds := []*berthv1.NodeCondition{{Type: "disk", Message: "full"}}
	s.ConditionsChanged(conds)
	select {
	case <-s.ready:
	default:
		t.Fatal("changed conditions did not wake the session")
	}
	if !s.heartbeatPending() {
		t.Fatal("changed conditions left no heartbeat pending")
	}
	hb := s.heartbeat().GetHeartbeat()
	if !hb.GetConditionsChanged() || len(hb.GetConditions()) != 1 || hb.GetConditions()[0].GetType() != "disk" {
		t.Fatalf("heartbeat = %v, want the changed disk condition", hb)
	}
	if hb := s.heartbeat().GetHeartbeat(); hb.GetConditionsChanged() || len(hb.GetConditions()) != 0 {
		t.Fatalf("the next heartbeat = %v, want no conditions", hb)
	}
}
