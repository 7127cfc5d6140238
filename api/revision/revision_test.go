package revision

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func service(version uint64, image string) *berthv1.Service {
	return &berthv1.Service{App: "shop", Name: "web", SpecVersion: version, Spec: &berthv1.ServiceSpec{Image: image}, ChangeCause: "apply"}
}

func TestChangeKeepsTheReplacedSpecAndBoundsTheHistory(t *testing.T) {
	now := time.Unix(1000, 0)
	svc := service(1, "web:1")
	for v := 2; v <= Limit+3; v++ {
		Change(svc, &berthv1.ServiceSpec{Image: "web:" + string(rune('0'+v))}, "apply", berthv1.UpdateState_UPDATE_STATE_UPDATING, "", now)
	}
	if svc.SpecVersion != Limit+3 {
		t.Fatalf("spec version = %d, want %d", svc.SpecVersion, Limit+3)
	}
	if len(svc.Revisions) != Limit {
		t.Fatalf("%d revisions kept, want %d", len(svc.Revisions), Limit)
	}
	if first, last := svc.Revisions[0].SpecVersion, svc.Revisions[Limit-1].SpecVersion; first != 3 || last != Limit+2 {
		t.Fatalf("revisions run from %d to %d, want 3 to %d", first, last, Limit+2)
	}
	st := svc.UpdateStatus
	if st.State != berthv1.UpdateState_UPDATE_STATE_UPDATING || st.FromVersion != Limit+2 || !st.StartedAt.AsTime().Equal(now) {
		t.Fatalf("update status = %v", st)
	}
}

func TestRollbackMakesTheEarlierSpecCurrentAsANewVersion(t *testing.T) {
	now := time.Unix(2000, 0)
	svc := service(1, "web:1")
	Change(svc, &berthv1.ServiceSpec{Image: "web:2"}, "apply", berthv1.UpdateState_UPDATE_STATE_UPDATING, "", now)
	rev, err := Find(svc, 0)
	if err != nil {
		t.Fatal(err)
	}
	Rollback(svc, rev, "task web.1 failed: exit code 1", now)
	if svc.SpecVersion != 3 || svc.Spec.Image != "web:1" {
		t.Fatalf("after rollback: version %d image %q, want 3 web:1", svc.SpecVersion, svc.Spec.Image)
	}
	if svc.UpdateStatus.State != berthv1.UpdateState_UPDATE_STATE_ROLLBACK_STARTED {
		t.Fatalf("state = %v, want rollback started", svc.UpdateStatus.State)
	}
	if want := "rollback to version 1: task web.1 failed: exit code 1"; svc.ChangeCause != want {
		t.Fatalf("cause = %q, want %q", svc.ChangeCause, want)
	}
	// The revision's spec is copied: changing the current spec leaves the
	// history alone.
	svc.Spec.Image = "changed"
	if svc.Revisions[0].Spec.Image != "web:1" {
		t.Fatalf("the history changed with the current spec")
	}
}

func TestFindSaysWhichVersionsExist(t *testing.T) {
	none := service(1, "web:1")
	svc := service(1, "web:1")
	Change(svc, &berthv1.ServiceSpec{Image: "web:2"}, "apply", berthv1.UpdateState_UPDATE_STATE_UPDATING, "", time.Unix(0, 0))
	tests := []struct {
		name    string
		svc     *berthv1.Service
		version uint64
		image   string // of the revision found
		err     error
		words   string
	}{
		{name: "newest", svc: svc, image: "web:1"},
		{name: "named", svc: svc, version: 1, image: "web:1"},
		{name: "no earlier version", svc: none, err: ErrNoRevisions, words: "shop/web has no earlier version to roll back to: version 1 is the only one kept"},
		{name: "the current version", svc: svc, version: 2, err: ErrCurrentVersion, words: "version 2 is already the current spec of service shop/web; name an earlier one (1)"},
		{name: "a version not kept", svc: svc, version: 7, err: ErrNoSuchVersion, words: "shop/web has no version 7 to roll back to; the versions kept are 1"},
	}
	for _, tt := range tests {
		r, err := Find(tt.svc, tt.version)
		if tt.err != nil {
			if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.words) {
				t.Errorf("%s: err = %v, want %v saying %q", tt.name, err, tt.err, tt.words)
			}
			continue
		}
		if err != nil || r.GetSpec().GetImage() != tt.image {
			t.Errorf("%s: Find = %v, %v; want the revision of %s", tt.name, r, err, tt.image)
		}
	}
}

func TestChangeDatesTheReplacedSpec(t *testing.T) {
	created := timestamppb.New(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	made := timestamppb.New(time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC))
	now := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		svc         *berthv1.Service
		wantCreated *timestamppb.Timestamp
	}{
		{"made by an apply", &berthv1.Service{Meta: &berthv1.Meta{CreatedAt: created}, SpecVersion: 3, SpecUpdatedAt: made, ChangeCause: "apply",
			Spec: &berthv1.ServiceSpec{Image: "old"}}, made},
		{"stored before versions had a time", &berthv1.Service{Meta: &berthv1.Meta{CreatedAt: created}, SpecVersion: 3,
			Spec: &berthv1.ServiceSpec{Image: "old"}}, created},
	}
	for _, tt := range tests {
		cause := tt.svc.ChangeCause
		Change(tt.svc, &berthv1.ServiceSpec{Image: "new"}, "rollback to version 2", berthv1.UpdateState_UPDATE_STATE_ROLLBACK_STARTED, "", now)
		if tt.svc.SpecVersion != 4 || tt.svc.Spec.Image != "new" || tt.svc.ChangeCause != "rollback to version 2" || !tt.svc.SpecUpdatedAt.AsTime().Equal(now) {
			t.Errorf("%s: service %v", tt.name, tt.svc)
		}
		r := tt.svc.Revisions[0]
		if r.SpecVersion != 3 || r.Spec.Image != "old" || !r.CreatedAt.AsTime().Equal(tt.wantCreated.AsTime()) || r.ChangeCause != cause {
			t.Errorf("%s: revision %v, want version 3 of image old made at %v", tt.name, r, tt.wantCreated.AsTime())
		}
	}
}

func TestRollbackKeepsWhatMakesNoVersion(t *testing.T) {
	replicated, global := berthv1.ServiceMode_SERVICE_MODE_REPLICATED, berthv1.ServiceMode_SERVICE_MODE_GLOBAL
	spec := func(image string, mode berthv1.ServiceMode, replicas uint64, parallelism uint64, dep string) *berthv1.ServiceSpec {
		return &berthv1.ServiceSpec{
			Image: image, Mode: mode, Replicas: replicas,
			DependsOn:      []*berthv1.Dependency{{Service: dep}},
			UpdateConfig:   &berthv1.UpdateConfig{Parallelism: parallelism},
			RollbackConfig: &berthv1.UpdateConfig{Parallelism: parallelism},
		}
	}
	tests := []struct {
		name         string
		old, cur     *berthv1.ServiceSpec
		why          string
		wantReplicas uint64
		wantCause    string
		wantMessage  string
	}{
		{name: "same mode keeps the replicas", old: spec("web:1", replicated, 2, 1, "db"), cur: spec("web:2", replicated, 5, 3, "cache"),
			wantReplicas: 5, wantCause: "rollback to version 1", wantMessage: "rollback to version 1 requested"},
		{name: "another mode takes the old replicas", old: spec("web:1", replicated, 2, 1, "db"), cur: spec("web:2", global, 0, 3, "cache"),
			why: "update to version 2 failed: exit code 1", wantReplicas: 2,
			wantCause:   "rollback to version 1: update to version 2 failed: exit code 1",
			wantMessage: "rollback to version 1: update to version 2 failed: exit code 1"},
	}
	for _, tt := range tests {
		svc := &berthv1.Service{App: "shop", Name: "web", SpecVersion: 1, Spec: tt.old}
		Change(svc, tt.cur, "apply", berthv1.UpdateState_UPDATE_STATE_UPDATING, "", time.Unix(0, 0))
		rev, err := Find(svc, 0)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		Rollback(svc, rev, tt.why, time.Unix(1, 0))
		got := svc.Spec
		if got.Image != "web:1" || got.Mode != tt.old.Mode || got.Replicas != tt.wantReplicas {
			t.Errorf("%s: image %s, mode %v, %d replicas; want web:1, %v, %d", tt.name, got.Image, got.Mode, got.Replicas, tt.old.Mode, tt.wantReplicas)
		}
		for _, f := range []string{"depends_on", "update_config", "rollback_config"} {
			if slices.Contains(ChangedFields(got, tt.cur), f) {
				t.Errorf("%s: %s is the old one, want the current one", tt.name, f)
			}
		}
		if svc.ChangeCause != tt.wantCause || svc.UpdateStatus.GetMessage() != tt.wantMessage {
			t.Errorf("%s: cause %q, message %q; want %q, %q", tt.name, svc.ChangeCause, svc.UpdateStatus.GetMessage(), tt.wantCause, tt.wantMessage)
		}
	}
}

func TestChangedFieldsAndNeedsNewVersion(t *testing.T) {
	base := func() *berthv1.ServiceSpec {
		return &berthv1.ServiceSpec{Image: "web:1", Replicas: 2, Labels: map[string]string{"team": "a"}}
	}
	tests := []struct {
		name       string
		change     func(*berthv1.ServiceSpec)
		fields     []string
		newVersion bool
	}{
		{name: "equal", change: func(*berthv1.ServiceSpec) {}},
		{name: "replicas", change: func(s *berthv1.ServiceSpec) { s.Replicas = 3 }, fields: []string{"replicas"}},
		{name: "configs", change: func(s *berthv1.ServiceSpec) {
			s.UpdateConfig = &berthv1.UpdateConfig{Parallelism: 2}
			s.RollbackConfig = &berthv1.UpdateConfig{Parallelism: 2}
		}, fields: []string{"update_config", "rollback_config"}},
		{name: "image and replicas", change: func(s *berthv1.ServiceSpec) { s.Image, s.Replicas = "web:2", 3 }, fields: []string{"image", "replicas"}, newVersion: true},
		{name: "a map entry", change: func(s *berthv1.ServiceSpec) { s.Labels["team"] = "b" }, fields: []string{"labels"}, newVersion: true},
		// New log limits apply to new containers: the tasks are replaced.
		{name: "logging", change: func(s *berthv1.ServiceSpec) { s.Logging = &berthv1.LogConfig{MaxSize: 1000} }, fields: []string{"logging"}, newVersion: true},
	}
	for _, tt := range tests {
		next := base()
		tt.change(next)
		got := ChangedFields(base(), next)
		slices.Sort(got)
		want := slices.Sorted(slices.Values(tt.fields))
		if !slices.Equal(got, want) {
			t.Errorf("%s: changed fields %v, want %v", tt.name, got, want)
		}
		if NeedsNewVersion(got) != tt.newVersion {
			t.Errorf("%s: NeedsNewVersion(%v) = %v, want %v", tt.name, got, !tt.newVersion, tt.newVersion)
		}
	}
}

func TestChangedFieldsKeepsTheFieldOrder(t *testing.T) {
	a := &berthv1.ServiceSpec{Image: "web:1", Env: []string{"A=1"}, Replicas: 2}
	b := &berthv1.ServiceSpec{Image: "web:2", Env: []string{"A=1"}, Replicas: 2, Healthcheck: &berthv1.HealthCheck{TcpPort: 80}}
	if got := strings.Join(ChangedFields(a, b), ","); got != "image,healthcheck" {
		t.Errorf("ChangedFields = %q, want image,healthcheck", got)
	}
}
