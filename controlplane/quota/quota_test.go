package quota

import (
	"errors"
	"math"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

const mib = 1 << 20

func spec(replicas uint64, cpu, mem int64, volumes ...string) *berthv1.ServiceSpec {
	s := &berthv1.ServiceSpec{Replicas: replicas, Reservations: &berthv1.Resources{MilliCpus: cpu, MemoryBytes: mem}}
	for _, v := range volumes {
		s.Mounts = append(s.Mounts, &berthv1.Mount{Type: berthv1.MountType_MOUNT_TYPE_VOLUME, Source: v, Target: "/" + v})
	}
	return s
}

func TestDesired(t *testing.T) {
	nodes := []*berthv1.Node{
		{Meta: &berthv1.Meta{Id: "a"}, Name: "a", Status: berthv1.NodeStatus_NODE_STATUS_READY, Labels: map[string]string{"zone": "eu"}},
		{Meta: &berthv1.Meta{Id: "b"}, Name: "b", Status: berthv1.NodeStatus_NODE_STATUS_READY, Labels: map[string]string{"zone": "us"}},
		{Meta: &berthv1.Meta{Id: "c"}, Name: "c", Status: berthv1.NodeStatus_NODE_STATUS_DOWN},
		{Meta: &berthv1.Meta{Id: "d"}, Name: "d", Status: berthv1.NodeStatus_NODE_STATUS_READY, Availability: berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN},
	}
	global := func(constraints ...string) *berthv1.ServiceSpec {
		s := spec(7, 100, mib, "data")
		s.Mode = berthv1.ServiceMode_SERVICE_MODE_GLOBAL
		s.Placement = &berthv1.Placement{Constraints: constraints}
		return s
	}
	for _, tc := range []struct {
		name    string
		spec    *berthv1.ServiceSpec
		tasks   int64
		volumes []string
	}{
		{"replicated", spec(3, 0, 0), 3, nil},
		{"replicated with volumes", spec(2, 0, 0, "data", "logs", "data"), 2, []string{"data.1", "logs.1", "data.2", "logs.2"}},
		{"scaled to zero", spec(0, 100, 0, "data"), 0, nil},
		{"global: ready nodes neither down nor drained", global(), 2, []string{"data.a", "data.b"}},
		{"global with a constraint", global("node.labels.zone==eu"), 1, []string{"data.a"}},
		{"global with a bad constraint runs nowhere", global("zone="), 0, nil},
	} {
		got := Desired("app/svc", tc.spec, nodes)
		if got.Tasks != tc.tasks || strings.Join(got.Volumes, ",") != strings.Join(tc.volumes, ",") {
			t.Errorf("%s: tasks %d volumes %v, want %d %v", tc.name, got.Tasks, got.Volumes, tc.tasks, tc.volumes)
		}
	}
}

func TestOf(t *testing.T) {
	services := []Service{
		Desired("web/api", spec(4, 250, 512*mib, "cache"), nil),
		Desired("web/db", spec(1, 1000, 2048*mib, "data"), nil),
	}
	got := Of(services, []string{"data.1", "old.1"})
	want := Use{CPUMillis: 2000, MemoryBytes: 4096 * mib, Tasks: 5, Volumes: 6}
	if got != want {
		t.Errorf("Of = %+v, want %+v", got, want)
	}
	// Saturates instead of wrapping negative.
	huge := Of([]Service{{Spec: spec(0, math.MaxInt64, math.MaxInt64), Tasks: math.MaxInt64}, {Spec: spec(0, 1, 1), Tasks: 5}}, nil)
	if huge.CPUMillis != math.MaxInt64 || huge.MemoryBytes != math.MaxInt64 || huge.Tasks != math.MaxInt64 {
		t.Errorf("huge use wrapped: %+v", huge)
	}
}

func TestCheck(t *testing.T) {
	api := Desired("web/api", spec(4, 250, 512*mib), nil)
	for _, tc := range []struct {
		name          string
		quota         *berthv1.NamespaceQuota
		before, after Use
		want          []string // one substring per resource refused; none: admitted
	}{
		{"no quota", nil, Use{}, Use{Tasks: 1 << 40, MemoryBytes: 1 << 60}, nil},
		{"zero bounds nothing", &berthv1.NamespaceQuota{}, Use{}, Use{Tasks: 100}, nil},
		{"fits exactly", &berthv1.NamespaceQuota{Tasks: 5, MemoryBytes: 4096 * mib}, Use{Tasks: 1}, Use{Tasks: 5, MemoryBytes: 4096 * mib}, nil},
		{"memory over",
			&berthv1.NamespaceQuota{MemoryBytes: 4096 * mib}, Use{MemoryBytes: 3072 * mib}, Use{MemoryBytes: 5120 * mib},
			[]string{"namespace team-a: memory quota 4 GiB; in use 3 GiB; this apply needs 2 GiB more (web/api: 4 replicas × 512 MiB)"}},
		{"tasks and cpu over, in order",
			&berthv1.NamespaceQuota{Tasks: 3, CpuMillis: 500}, Use{}, Use{Tasks: 4, CPUMillis: 1000},
			[]string{"tasks quota 3 tasks; in use 0 tasks; this apply needs 4 tasks more (web/api: 4 replicas)", "cpu quota 0.5 CPU; in use 0 CPU; this apply needs 1 CPU more (web/api: 4 replicas × 0.25 CPU)"}},
		{"volumes over",
			&berthv1.NamespaceQuota{Volumes: 2}, Use{Volumes: 2}, Use{Volumes: 3}, []string{"volumes quota 2 volumes; in use 2 volumes; this apply needs 1 volume more"}},
		{"already over quota, shrinking is admitted", &berthv1.NamespaceQuota{Tasks: 2}, Use{Tasks: 10}, Use{Tasks: 8}, nil},
		{"already over quota, unchanged is admitted", &berthv1.NamespaceQuota{Tasks: 2}, Use{Tasks: 10}, Use{Tasks: 10}, nil},
	} {
		err := Check(Change{Namespace: "team-a", Verb: "apply", Quota: tc.quota, Before: tc.before, After: tc.after, Services: []Service{api}})
		if len(tc.want) == 0 {
			if err != nil {
				t.Errorf("%s: refused: %v", tc.name, err)
			}
			continue
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != len(tc.want) {
			t.Errorf("%s: got %v, want %d refusals", tc.name, err, len(tc.want))
			continue
		}
		for i, w := range tc.want {
			if !strings.Contains(errs[i].Error(), w) {
				t.Errorf("%s: refusal %d = %q, want it to contain %q", tc.name, i, errs[i].Error(), w)
			}
		}
		if !strings.Contains(err.Error(), "berth namespace update") {
			t.Errorf("%s: %q does not say how to fix it", tc.name, err)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{FormatCPU(500), "0.5 CPU"}, {FormatCPU(1000), "1 CPU"}, {FormatCPU(2500), "2.5 CPUs"}, {FormatCPU(0), "0 CPU"},
		{FormatBytes(512), "512 bytes"}, {FormatBytes(512 * mib), "512 MiB"}, {FormatBytes(1536 * mib), "1.5 GiB"}, {FormatBytes(4 << 30), "4 GiB"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
