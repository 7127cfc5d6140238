package audit

import (
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store/storetest"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestSweepRemovesOnlyRecordsPastRetention(t *testing.T) {
	st := storetest.New(t)
	ctx := t.Context()
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for _, age := range []time.Duration{40 * day, 30*day + time.Second, 30*day - time.Second, day, 0} {
		if err := st.PutAudit(ctx, &berthv1.AuditRecord{Time: timestamppb.New(now.Add(-age)), Method: "Apply", Message: age.String()}); err != nil {
			t.Fatal(err)
		}
	}
	sweep := &Sweep{Store: st, Keep: 30 * day, Now: func() time.Time { return now }}
	n, err := sweep.Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("swept %d records, want the 2 older than 30 days", n)
	}
	left, _, err := st.AuditRecords(ctx, time.Time{}, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ages []string
	for _, r := range left {
		ages = append(ages, r.Message)
	}
	want := []string{(30*day - time.Second).String(), day.String(), "0s"}
	if len(ages) != len(want) {
		t.Fatalf("left %v, want %v", ages, want)
	}
	for i := range want {
		if ages[i] != want[i] {
			t.Fatalf("left %v, want %v", ages, want)
		}
	}
	// Nothing more to sweep.
	if n, err := sweep.Once(ctx); err != nil || n != 0 {
		t.Errorf("second sweep: %d, %v; want 0, nil", n, err)
	}
}

func TestCheckRetention(t *testing.T) {
	if err := CheckRetention(59 * time.Minute); err == nil {
		t.Error("59m accepted, want refused")
	}
	if err := CheckRetention(time.Hour); err != nil {
		t.Errorf("1h refused: %v", err)
	}
}
