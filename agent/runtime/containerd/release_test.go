package containerd

import (
	"context"
	"testing"

	"github.com/berthproject/berth/agent/runtime"
)

// An exited container's Release detaches its network and keeps the
// container with its exit code; Release again, Remove after it, and
// Release of an unknown id all succeed.
func TestContainerdReleaseKeepsTheExitedContainer(t *testing.T) {
	network := &recordingNetwork{}
	env := newTestEnv(t, network)
	ctx := context.Background()
	spec := runtime.ContainerSpec{ID: "ended", Image: busyboxRef, Command: []string{"sh", "-c", "exit 4"}}
	if code := runToExit(t, env.rt, spec); code != 4 {
		t.Fatalf("exit code %d, want 4", code)
	}
	if !network.isAttached(spec.ID) {
		t.Fatal("the container was not attached")
	}
	for range 2 {
		if err := env.rt.Release(ctx, spec.ID); err != nil {
			t.Fatalf("Release: %v", err)
		}
	}
	if network.isAttached(spec.ID) {
		t.Fatal("Release left the network attached")
	}
	st, err := env.rt.Inspect(ctx, spec.ID)
	if err != nil || st.State != runtime.StateStopped || st.ExitCode != 4 {
		t.Fatalf("Inspect after Release = %+v, %v; want stopped with exit code 4", st, err)
	}
	if err := env.rt.Remove(ctx, spec.ID); err != nil {
		t.Fatalf("Remove after Release: %v", err)
	}
	if err := env.rt.Release(ctx, "never-made"); err != nil {
		t.Fatalf("Release of an unknown container: %v", err)
	}
}
