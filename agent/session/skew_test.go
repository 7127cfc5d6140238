package session

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestVersionRefusalBacksOff(t *testing.T) {
	refused := fmt.Errorf("session: %w", status.Error(codes.FailedPrecondition, "agent v0.1.0 and server v0.3.0 are more than 1 minor version apart"))
	if !versionRefused(refused) {
		t.Fatalf("versionRefused(%v) = false", refused)
	}
	if versionRefused(status.Error(codes.Unavailable, "not the leader")) {
		t.Fatal("versionRefused(Unavailable) = true")
	}
	var waits []time.Duration
	var w time.Duration
	for range 7 {
		w = nextSkewWait(w)
		waits = append(waits, w)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	if fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Fatalf("waits after refusals = %v, want %v", waits, want)
	}
}
