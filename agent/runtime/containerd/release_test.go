package containerd

import (
	"context"
	"errors"
	"testing"

	"github.com/berthproject/berth/agent/runtime"
)

// An exited container's Release detaches its network and deletes its task
// (its shim exits), keeping the container with how it exited; Release
// again, Remove after it, and Release of an unknown id all succeed.
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
	if _, err := env.rt.task(env.rt.ctx(ctx), spec.ID); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("the ended task (and its shim) is still there after Release: %v", err)
	}
	st, err := env.rt.Inspect(ctx, spec.ID)
	if err != nil || st.State != runtime.StateStopped || st.ExitCode != 4 || st.ExitedAt.IsZero() || st.OOMKilled {
		t.Fatalf("Inspect after Release = %+v, %v; want stopped with exit code 4 and its time", st, err)
	}
	// A restarted agent lists it as it ended.
	list, err := env.open(t, testOwner, network).List(ctx)
	if err != nil || len(list) != 1 || list[0].State != runtime.StateStopped || list[0].ExitCode != 4 || !list[0].ExitedAt.Equal(st.ExitedAt) {
		t.Fatalf("List after Release = %+v, %v; want it stopped with exit code 4 at %v", list, err, st.ExitedAt)
	}
	if len(list[0].Labels) != 0 {
		t.Errorf("the exit labels show as user labels: %v", list[0].Labels)
	}
	if err := env.rt.Remove(ctx, spec.ID); err != nil {
		t.Fatalf("Remove after Release: %v", err)
	}
	if err := env.rt.Release(ctx, "never-made"); err != nil {
		t.Fatalf("Release of an unknown container: %v", err)
	}
}
