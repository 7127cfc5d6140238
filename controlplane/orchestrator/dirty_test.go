package orchestrator

import (
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"google.golang.org/protobuf/proto"
)

// TestSlotPassActsAsWholePass: after one task of a steady service failed,
// the pass over its slot alone makes the replacement a whole pass makes,
// and nothing else.
func TestSlotPassActsAsWholePass(t *testing.T) {
	o, victim := oneFailedFixture(t, 20)
	svc, _ := o.cache.Service(serviceKey(&berthv1.Service{Namespace: victim.Namespace, App: victim.App, Name: victim.Service}))
	if !o.isSteady(svc) {
		t.Fatal("the service is not steady after its first pass")
	}
	var slotPass, wholePass writes
	o.passAfter(victim, &slotPass)
	o.reconcileAll(&wholePass)
	for name, w := range map[string]*writes{"slot pass": &slotPass, "whole pass": &wholePass} {
		if len(w.creates) != 1 || w.creates[0].Slot != victim.Slot || len(w.changes) != 0 || len(w.removes) != 0 {
			t.Errorf("%s: %d creates (slot %v), %d changes, %d removes; want one replacement in slot %d",
				name, len(w.creates), slotsOf(w.creates), len(w.changes), len(w.removes), victim.Slot)
		}
	}
}

// TestSlotPassFallsBackOnOutdatedSlot: a slot pass that finds a task of an
// older spec in its slot leaves the service to a whole pass, which the
// rollout's budget needs.
func TestSlotPassFallsBackOnOutdatedSlot(t *testing.T) {
	o, victim := oneFailedFixture(t, 5)
	svc, _ := o.cache.Service(serviceKey(&berthv1.Service{Namespace: victim.Namespace, App: victim.App, Name: victim.Service}))
	old := newTask(svc, victim.Slot, victim.NodeId, o.now())
	old.Spec = proto.Clone(old.Spec).(*berthv1.ServiceSpec)
	old.Spec.Image = "busybox:older"
	old.SpecVersion = 0
	o.index.update(old)
	var w writes
	if _, ok := o.reconcileChanged(svc, map[string]bool{taskstate.Slot(victim): true}, &w); ok {
		t.Fatal("the slot pass went on with an outdated slot")
	}
	if len(w.creates)+len(w.changes)+len(w.removes) != 0 {
		t.Fatalf("the refused slot pass wrote: %d creates, %d changes, %d removes", len(w.creates), len(w.changes), len(w.removes))
	}
}

func slotsOf(ts []*berthv1.Task) []uint64 {
	var out []uint64
	for _, t := range ts {
		out = append(out, t.Slot)
	}
	return out
}
