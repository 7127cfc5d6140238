package revision

import (
	"strings"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
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
	svc := service(1, "web:1")
	if _, err := Find(svc, 0); err == nil || !strings.Contains(err.Error(), "no earlier version") {
		t.Fatalf("err = %v, want no earlier version", err)
	}
	Change(svc, &berthv1.ServiceSpec{Image: "web:2"}, "apply", berthv1.UpdateState_UPDATE_STATE_UPDATING, "", time.Unix(0, 0))
	if _, err := Find(svc, 7); err == nil || !strings.Contains(err.Error(), "earlier versions are 1") {
		t.Fatalf("err = %v, want the list of versions", err)
	}
	if r, err := Find(svc, 1); err != nil || r.Spec.Image != "web:1" {
		t.Fatalf("Find(1) = %v, %v", r, err)
	}
}
