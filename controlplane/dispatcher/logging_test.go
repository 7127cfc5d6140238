package dispatcher

import (
	"testing"

	"google.golang.org/protobuf/proto"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestWithLogDefaults(t *testing.T) {
	unset := &berthv1.Task{Meta: &berthv1.Meta{Id: "a"}, Spec: &berthv1.ServiceSpec{Image: "x"}}
	half := &berthv1.Task{Meta: &berthv1.Meta{Id: "b"}, Spec: &berthv1.ServiceSpec{Image: "x", Logging: &berthv1.LogConfig{MaxFile: 7}}}
	own := &berthv1.Task{Meta: &berthv1.Meta{Id: "c"}, Spec: &berthv1.ServiceSpec{Image: "x", Logging: &berthv1.LogConfig{MaxSize: 5000, MaxFile: 2}}}
	cached := []*berthv1.Task{proto.Clone(unset).(*berthv1.Task), proto.Clone(half).(*berthv1.Task), proto.Clone(own).(*berthv1.Task)}

	a := &berthv1.Assignments{Tasks: append([]*berthv1.Task(nil), cached...)}
	withLogDefaults(&berthv1.ClusterSettings{}, a)
	for i := range a.Tasks {
		if a.Tasks[i] != cached[i] {
			t.Errorf("task %d changed though the cluster sets no log defaults", i)
		}
	}

	a = &berthv1.Assignments{Tasks: append([]*berthv1.Task(nil), cached...)}
	withLogDefaults(&berthv1.ClusterSettings{Logging: &berthv1.LogConfig{MaxSize: 20_000_000, MaxFile: 5}}, a)
	want := []*berthv1.LogConfig{{MaxSize: 20_000_000, MaxFile: 5}, {MaxSize: 20_000_000, MaxFile: 7}, {MaxSize: 5000, MaxFile: 2}}
	for i, w := range want {
		if got := a.Tasks[i].GetSpec().GetLogging(); !proto.Equal(got, w) {
			t.Errorf("task %d: logging %v, want %v", i, got, w)
		}
	}
	if !proto.Equal(cached[0], unset) || !proto.Equal(cached[1], half) {
		t.Error("the cache's tasks were modified")
	}
	if a.Tasks[2] != cached[2] {
		t.Error("a task with its own limits was copied")
	}
}
