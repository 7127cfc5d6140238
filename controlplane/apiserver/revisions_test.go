package apiserver

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/revision"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// stored returns the service as the cache holds it, or fails the test.
func stored(t *testing.T, s *Server, app, name string) *berthv1.Service {
	t.Helper()
	sv, ok := s.cfg.Cache.Service(store.ServiceKey(DefaultNamespace, app, name))
	if !ok {
		t.Fatalf("service %s/%s is not stored", app, name)
	}
	return sv
}

func revisionVersions(sv *berthv1.Service) []uint64 {
	var out []uint64
	for _, r := range sv.Revisions {
		out = append(out, r.SpecVersion)
	}
	return out
}

func TestApplyKeepsRevisions(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	web := func(image string, change func(*berthv1.ServiceSpec)) *berthv1.Service {
		sv := svc("web", image, 2)
		if change != nil {
			change(sv.Spec)
		}
		return sv
	}
	updating := berthv1.UpdateState_UPDATE_STATE_UPDATING
	steps := []struct {
		name      string
		want      *berthv1.Service
		version   uint64
		revisions []uint64
		// update is the expected update status: its state and the
		// version it started from; unspecified means unset.
		state berthv1.UpdateState
		from  uint64
	}{
		{name: "create", want: web("busybox:1.35", nil), version: 1},
		{name: "update config only", want: web("busybox:1.35", func(sp *berthv1.ServiceSpec) {
			sp.UpdateConfig = &berthv1.UpdateConfig{Parallelism: 2}
		}), version: 1},
		{name: "rollback config only", want: web("busybox:1.35", func(sp *berthv1.ServiceSpec) {
			sp.UpdateConfig = &berthv1.UpdateConfig{Parallelism: 2}
			sp.RollbackConfig = &berthv1.UpdateConfig{Delay: durationpb.New(time.Second)}
		}), version: 1},
		{name: "image", want: web("busybox:1.36", nil), version: 2, revisions: []uint64{1}, state: updating, from: 1},
		{name: "replicas only leave the rollout alone", want: web("busybox:1.36", func(sp *berthv1.ServiceSpec) { sp.Replicas = 7 }),
			version: 2, revisions: []uint64{1}, state: updating, from: 1},
		{name: "placement", want: web("busybox:1.36", func(sp *berthv1.ServiceSpec) {
			sp.Placement = &berthv1.Placement{Constraints: []string{"node.labels.zone==eu"}}
		}), version: 3, revisions: []uint64{1, 2}, state: updating, from: 2},
		{name: "strategy", want: web("busybox:1.36", func(sp *berthv1.ServiceSpec) {
			sp.Placement = &berthv1.Placement{Constraints: []string{"node.labels.zone==eu"}}
			sp.Strategy = berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK
		}), version: 4, revisions: []uint64{1, 2, 3}, state: updating, from: 3},
	}
	var prev *berthv1.Service
	for _, st := range steps {
		if _, err := s.Apply(ctx, &berthv1.ApplyRequest{App: "shop", Services: []*berthv1.Service{st.want}}); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := stored(t, s, "shop", "web")
		if got.SpecVersion != st.version || !slices.Equal(revisionVersions(got), st.revisions) {
			t.Errorf("%s: version %d with revisions %v, want %d with %v", st.name, got.SpecVersion, revisionVersions(got), st.version, st.revisions)
		}
		if got.ChangeCause != "apply" || got.SpecUpdatedAt == nil {
			t.Errorf("%s: change cause %q, spec updated at %v; want apply, set", st.name, got.ChangeCause, got.SpecUpdatedAt)
		}
		if us := got.UpdateStatus; us.GetState() != st.state || us.GetFromVersion() != st.from || (us != nil && us.StartedAt == nil) {
			t.Errorf("%s: update status %v, want %v from %d", st.name, us, st.state, st.from)
		}
		if prev != nil && got.SpecVersion > prev.SpecVersion {
			// The spec it replaced is the newest revision, as it was.
			last := got.Revisions[len(got.Revisions)-1]
			if !proto.Equal(last.Spec, prev.Spec) || !last.CreatedAt.AsTime().Equal(prev.SpecUpdatedAt.AsTime()) || last.ChangeCause != prev.ChangeCause {
				t.Errorf("%s: newest revision %v, want the previous spec %v made at %v", st.name, last, prev.Spec, prev.SpecUpdatedAt)
			}
		}
		if prev != nil && got.SpecVersion == prev.SpecVersion && !got.SpecUpdatedAt.AsTime().Equal(prev.SpecUpdatedAt.AsTime()) {
			t.Errorf("%s: an in-place change moved spec_updated_at", st.name)
		}
		prev = got
	}

	// Past revision.Limit, the oldest revisions go.
	for i := 0; i < 12; i++ {
		if _, err := s.Apply(ctx, &berthv1.ApplyRequest{App: "shop", Services: []*berthv1.Service{web(fmt.Sprintf("busybox:1.%d", 40+i), nil)}}); err != nil {
			t.Fatal(err)
		}
	}
	got := stored(t, s, "shop", "web")
	var want []uint64
	for v := got.SpecVersion - revision.Limit; v < got.SpecVersion; v++ {
		want = append(want, v)
	}
	if got.SpecVersion != 16 || !slices.Equal(revisionVersions(got), want) {
		t.Fatalf("version %d with revisions %v, want 16 with %v", got.SpecVersion, revisionVersions(got), want)
	}
}
