package scheduler

import (
	"reflect"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// volumeRecords is a VolumeLookup over records by "<namespace>/<name>".
type volumeRecords map[string]*berthv1.Volume

func (r volumeRecords) Volume(namespace, name string) (*berthv1.Volume, bool) {
	v, ok := r[namespace+"/"+name]
	return v, ok
}

// onNode returns the record of volume name (namespace default) on node.
func onNode(name, node string) volumeRecords {
	return volumeRecords{"default/" + name: {Namespace: "default", Name: name, NodeId: node}}
}

// mounts adds a named volume mount of each source.
func mounts(sources ...string) taskOpt {
	return func(t *berthv1.Task) {
		for _, s := range sources {
			t.Spec.Mounts = append(t.Spec.Mounts, &berthv1.Mount{Type: berthv1.MountType_MOUNT_TYPE_VOLUME, Source: s, Target: "/data/" + s})
		}
	}
}

func slot(n uint64) taskOpt { return func(t *berthv1.Task) { t.Slot = n } }

func TestScheduleVolumeStickiness(t *testing.T) {
	const (
		down  = berthv1.NodeStatus_NODE_STATUS_DOWN
		drain = berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN
		pause = berthv1.NodeAvailability_NODE_AVAILABILITY_PAUSE
		data  = "web_db-data"
	)
	merge := func(rs ...volumeRecords) volumeRecords {
		out := volumeRecords{}
		for _, r := range rs {
			for k, v := range r {
				out[k] = v
			}
		}
		return out
	}
	tests := []struct {
		name    string
		nodes   []*berthv1.Node
		tasks   []*berthv1.Task
		volumes volumeRecords
		pending []*berthv1.Task
		want    Plan
	}{
		{
			name:    "pinned slot goes to its volume's node, against the spread",
			nodes:   []*berthv1.Node{node("n1"), node("n2")},
			tasks:   []*berthv1.Task{task("r1", "db", running("n2"), mounts(data), slot(2))},
			volumes: merge(onNode(data+".1", "n2"), onNode(data+".2", "n2")),
			pending: []*berthv1.Task{task("a1", "db", mounts(data), slot(1))},
			want:    Plan{Assignments: placed("a1", "n2")},
		},
		{
			name:    "node down: the task waits",
			nodes:   []*berthv1.Node{node("n1"), node("n2", status(down))},
			volumes: onNode(data+".1", "n2"),
			pending: []*berthv1.Task{task("a1", "db", mounts(data), slot(1))},
			want:    Plan{Unplaced: []Unplaced{{TaskID: "a1", Reason: "waiting for node n2, which holds volume web_db-data.1"}}},
		},
		{
			name:    "node drained: the task waits",
			nodes:   []*berthv1.Node{node("n1"), node("n2", availability(drain))},
			volumes: onNode(data+".1", "n2"),
			pending: []*berthv1.Task{task("a1", "db", mounts(data), slot(1))},
			want:    Plan{Unplaced: []Unplaced{{TaskID: "a1", Reason: "waiting for node n2, which holds volume web_db-data.1"}}},
		},
		{
			name:    "node paused: the task waits",
			nodes:   []*berthv1.Node{node("n1"), node("n2", availability(pause))},
			volumes: onNode(data+".1", "n2"),
			pending: []*berthv1.Task{task("a1", "db", mounts(data), slot(1))},
			want:    Plan{Unplaced: []Unplaced{{TaskID: "a1", Reason: "waiting for node n2, which holds volume web_db-data.1"}}},
		},
		{
			name:    "node too small: the reason names the filter",
			nodes:   []*berthv1.Node{node("n1"), node("n2", capacity(4000, gib))},
			volumes: onNode(data+".1", "n2"),
			pending: []*berthv1.Task{task("a1", "db", mounts(data), slot(1), reserve(0, 2*gib))},
			want: Plan{Unplaced: []Unplaced{{TaskID: "a1",
				Reason: "waiting for node n2, which holds volume web_db-data.1 (insufficient memory on 1 node)"}}},
		},
		{
			name:    "node gone from the cluster",
			nodes:   []*berthv1.Node{node("n1")},
			volumes: onNode(data+".1", "n9"),
			pending: []*berthv1.Task{task("a1", "db", mounts(data), slot(1))},
			want: Plan{Unplaced: []Unplaced{{TaskID: "a1", Reason: "waiting for node n9, which holds volume web_db-data.1 " +
				"(the node is not in the cluster; berth volume rm --force web_db-data.1 gives up its data and lets the slot start anew)"}}},
		},
		{
			name:    "no record: placed by the ranking, and a second task of the slot follows it",
			nodes:   []*berthv1.Node{node("n1"), node("n2")},
			tasks:   []*berthv1.Task{task("r1", "db", running("n1"), mounts(data), slot(2))},
			volumes: onNode(data+".2", "n1"),
			pending: []*berthv1.Task{task("a1", "db", mounts(data), slot(1)), task("a2", "db", mounts(data), slot(1))},
			want:    Plan{Assignments: placed("a1", "n2", "a2", "n2")},
		},
		{
			name:    "a record without a node pins nothing",
			nodes:   []*berthv1.Node{node("n1"), node("n2")},
			tasks:   []*berthv1.Task{task("r1", "db", running("n1"))},
			volumes: onNode(data+".1", ""),
			pending: []*berthv1.Task{task("a1", "db", mounts(data), slot(1))},
			want:    Plan{Assignments: placed("a1", "n2")},
		},
		{
			name:    "volumes on two nodes",
			nodes:   []*berthv1.Node{node("n1"), node("n2")},
			volumes: merge(onNode("a.1", "n1"), onNode("b.1", "n2")),
			pending: []*berthv1.Task{task("a1", "db", mounts("a", "b"), slot(1))},
			want: Plan{Unplaced: []Unplaced{{TaskID: "a1", Reason: "volumes a.1 (on node n1) and b.1 (on node n2) are on different nodes, " +
				"so no node has both; remove one with berth volume rm to start it anew"}}},
		},
		{
			name:    "pinned tasks are placed before the others take their room",
			nodes:   []*berthv1.Node{node("n1", capacity(4000, 2*gib))},
			volumes: onNode(data+".1", "n1"),
			pending: []*berthv1.Task{task("a1", "web", reserve(0, 2*gib)), task("a2", "db", mounts(data), slot(1), reserve(0, 2*gib))},
			want: Plan{
				Assignments: placed("a2", "n1"),
				Unplaced:    []Unplaced{{TaskID: "a1", Reason: "no suitable node (insufficient memory on 1 node)"}},
			},
		},
		{
			name:    "a global task is not pinned",
			nodes:   []*berthv1.Node{node("n1"), node("n2")},
			volumes: onNode(data+".n2", "n2"),
			pending: []*berthv1.Task{task("a1", "db", mounts(data), on("n1"))},
			want:    Plan{Assignments: placed("a1", "n1")},
		},
		{
			name:    "bind and tmpfs mounts and scratch volumes pin nothing",
			nodes:   []*berthv1.Node{node("n1"), node("n2")},
			tasks:   []*berthv1.Task{task("r1", "db", running("n1"))},
			volumes: onNode(".1", "n1"),
			pending: []*berthv1.Task{task("a1", "db", slot(1), func(t *berthv1.Task) {
				t.Spec.Mounts = []*berthv1.Mount{
					{Type: berthv1.MountType_MOUNT_TYPE_BIND, Source: "/srv", Target: "/srv"},
					{Type: berthv1.MountType_MOUNT_TYPE_TMPFS, Target: "/tmp"},
					{Type: berthv1.MountType_MOUNT_TYPE_VOLUME, Target: "/scratch"},
				}
			})},
			want: Plan{Assignments: placed("a1", "n2")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Schedule(Snapshot{Nodes: tc.nodes, Tasks: tc.tasks, Volumes: tc.volumes}, tc.pending)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestTaskVolumes(t *testing.T) {
	spec := &berthv1.ServiceSpec{Mounts: []*berthv1.Mount{
		{Source: "shop_data", Target: "/data"},
		{Type: berthv1.MountType_MOUNT_TYPE_VOLUME, Source: "shared", Target: "/shared", External: true},
		{Type: berthv1.MountType_MOUNT_TYPE_VOLUME, Source: "shop_data", Target: "/again"},
		{Type: berthv1.MountType_MOUNT_TYPE_BIND, Source: "/srv", Target: "/srv"},
	}}
	want := []TaskVolume{{Name: "shop_data.3", Source: "shop_data"}, {Name: "shared.3", Source: "shared", External: true}}
	if got := TaskVolumes(spec, 3, "n1"); !reflect.DeepEqual(got, want) {
		t.Errorf("slot 3: %+v, want %+v", got, want)
	}
	if got := TaskVolumes(spec, 0, "n1"); got[0].Name != "shop_data.n1" {
		t.Errorf("global: %+v, want names by node", got)
	}
}

func TestRebalanceKeepsTasksWithVolumes(t *testing.T) {
	nodes := []*berthv1.Node{node("n1"), node("n2")}
	var service []*berthv1.Task
	for _, id := range []string{"r1", "r2", "r3"} {
		service = append(service, task(id, "db", running("n1"), mounts("data"), slot(1)))
	}
	if moves := Rebalance(Snapshot{Nodes: nodes, Tasks: service}, service, 3); len(moves) != 0 {
		t.Errorf("moves %v, want none", moves)
	}
}
