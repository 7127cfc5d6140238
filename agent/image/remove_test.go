package image

import (
	"reflect"
	"testing"
	"time"

	"github.com/berthproject/berth/agent/runtime"
)

func TestPlanRemoveAndPrune(t *testing.T) {
	t0 := time.Unix(1000, 0)
	images := []runtime.Image{
		{Name: "docker.io/library/web:1", Digest: "sha256:aa", Size: 10, CreatedAt: t0},
		{Name: "docker.io/library/job:1", Digest: "sha256:bb", Size: 20, CreatedAt: t0.Add(time.Second)},
		{Name: "docker.io/library/old:1", Digest: "sha256:cc", Size: 30, CreatedAt: t0.Add(2 * time.Second)},
		{Name: "docker.io/library/old@sha256:dd", Digest: "sha256:dd", Size: 40, CreatedAt: t0.Add(3 * time.Second)},
		// Another name of the running web image: removing it frees nothing.
		{Name: "docker.io/library/web@sha256:aa", Digest: "sha256:aa", Size: 10, CreatedAt: t0},
	}
	containers := []runtime.Status{
		{ID: "task-web", Image: "docker.io/library/web:1", State: runtime.StateRunning},
		{ID: "task-job", Image: "docker.io/library/job:1", State: runtime.StateStopped},
	}
	names := func(ims []runtime.Image) []string {
		var out []string
		for _, im := range ims {
			out = append(out, im.Name)
		}
		return out
	}

	tests := []struct {
		name    string
		asked   []string
		force   bool
		remove  []string
		kept    []Kept
		missing []string
	}{
		{"unused goes", []string{"docker.io/library/old:1"}, false, []string{"docker.io/library/old:1"}, nil, nil},
		{"used by a stopped task is kept", []string{"docker.io/library/job:1"}, false, nil,
			[]Kept{{Image: "docker.io/library/job:1", Containers: []string{"task-job"}}}, nil},
		{"forced, a stopped task's image goes", []string{"docker.io/library/job:1"}, true, []string{"docker.io/library/job:1"}, nil, nil},
		{"forced, a running task's image stays", []string{"docker.io/library/web:1"}, true, nil,
			[]Kept{{Image: "docker.io/library/web:1", Containers: []string{"task-web"}, Running: true}}, nil},
		{"missing is said", []string{"docker.io/library/nope:1"}, false, nil, nil, []string{"docker.io/library/nope:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := PlanRemove(images, containers, tt.asked, tt.force)
			if got := names(p.Remove); !reflect.DeepEqual(got, tt.remove) {
				t.Errorf("remove = %v, want %v", got, tt.remove)
			}
			if !reflect.DeepEqual(p.Kept, tt.kept) {
				t.Errorf("kept = %+v, want %+v", p.Kept, tt.kept)
			}
			if !reflect.DeepEqual(p.Missing, tt.missing) {
				t.Errorf("missing = %v, want %v", p.Missing, tt.missing)
			}
		})
	}

	if got, want := names(PlanPrune(images, containers, false)), []string{"docker.io/library/old@sha256:dd"}; !reflect.DeepEqual(got, want) {
		t.Errorf("prune = %v, want only the dangling unused %v", got, want)
	}
	if got, want := names(PlanPrune(images, containers, true)), []string{"docker.io/library/old:1", "docker.io/library/old@sha256:dd"}; !reflect.DeepEqual(got, want) {
		t.Errorf("prune --all = %v, want every unused image %v", got, want)
	}
	if got := Reclaimable(images, containers); got != 70 {
		t.Errorf("reclaimable = %d, want 70 (old:1 and old@sha256:dd)", got)
	}
}
