package dispatcher

import (
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func cond(typ string, ok bool, msg string, since time.Time) *berthv1.NodeCondition {
	return &berthv1.NodeCondition{Type: typ, Ok: ok, Message: msg, Since: timestamppb.New(since)}
}

func TestMergeConditions(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Hour)
	stored := []*berthv1.NodeCondition{cond("runtime", true, "", t0), cond("network", false, "held by br-x", t0)}
	for _, tc := range []struct {
		name     string
		reported []*berthv1.NodeCondition
		want     map[string]time.Time
		ok       map[string]bool
	}{
		{"same ok keeps the stored since", []*berthv1.NodeCondition{cond("runtime", true, "", t1), cond("network", false, "held by br-x", t1)},
			map[string]time.Time{"runtime": t0, "network": t0}, map[string]bool{"runtime": true, "network": false}},
		{"a flip takes the agent's since", []*berthv1.NodeCondition{cond("runtime", true, "", t1), cond("network", true, "", t1)},
			map[string]time.Time{"runtime": t0, "network": t1}, map[string]bool{"network": true}},
		{"a type the hello lacks is kept", []*berthv1.NodeCondition{cond("runtime", true, "", t1), cond("disk", true, "", t1)},
			map[string]time.Time{"runtime": t0, "network": t0, "disk": t1}, map[string]bool{"network": false, "disk": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mergeConditions(stored, tc.reported)
			by := map[string]*berthv1.NodeCondition{}
			for _, c := range got {
				by[c.Type] = c
			}
			if len(by) != len(tc.want) {
				t.Fatalf("merged %v; want the types of %v", got, tc.want)
			}
			for typ, since := range tc.want {
				if !by[typ].GetSince().AsTime().Equal(since) {
					t.Errorf("%s since %v, want %v", typ, by[typ].GetSince().AsTime(), since)
				}
			}
			for typ, ok := range tc.ok {
				if by[typ].GetOk() != ok {
					t.Errorf("%s ok %v, want %v", typ, by[typ].GetOk(), ok)
				}
			}
		})
	}
}

func TestConditionEvent(t *testing.T) {
	t0 := time.Now()
	node := func(cs ...*berthv1.NodeCondition) *berthv1.Node {
		return &berthv1.Node{Meta: &berthv1.Meta{Id: "n1"}, Name: "beta", Status: berthv1.NodeStatus_NODE_STATUS_READY, Conditions: cs}
	}
	ok := node(cond("runtime", true, "", t0), cond("network", true, "", t0))
	broken := node(cond("runtime", true, "", t0), cond("network", false, "held by br-x", t0))
	full := node(cond("runtime", true, "", t0), cond("network", false, "held by br-y", t0))
	for _, tc := range []struct {
		name        string
		old, n      *berthv1.Node
		action, msg string
	}{
		{"no change", ok, ok, "", ""},
		{"still failing the same way", broken, broken, "", ""},
		{"starts failing", ok, broken, "not-ready", "node beta is not ready: network: held by br-x"},
		{"fails another way", broken, full, "not-ready", "node beta is not ready: network: held by br-y"},
		{"ready again", broken, ok, "ready", "node beta is ready again"},
		{"first report, failing", node(), broken, "not-ready", "node beta is not ready: network: held by br-x"},
		{"first report, fine", node(), ok, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := conditionEvent(tc.old, tc.n)
			if tc.action == "" {
				if ev != nil {
					t.Fatalf("event %v, want none", ev)
				}
				return
			}
			if ev == nil || ev.Action != tc.action || ev.Message != tc.msg || ev.ObjectId != "n1" || ev.Kind != "node" {
				t.Fatalf("event %v; want %s %q", ev, tc.action, tc.msg)
			}
		})
	}
}
