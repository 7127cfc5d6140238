package containerd

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/berthproject/berth/agent/runtime"
)

// TestContainerdOOMKill runs containers to their end under a memory limit
// and checks that only the one the kernel killed for memory is reported
// so: by Wait, Inspect, List, and a new runtime handle (an agent that
// restarted after the kill).
func TestContainerdOOMKill(t *testing.T) {
	env := newTestEnv(t, nil)
	const limit = 16 << 20
	tests := []struct {
		name     string
		command  []string
		stop     bool // end it with SIGKILL from Stop instead
		wantCode int32
		wantOOM  bool
	}{
		// tail buffers its one endless line until the limit is hit.
		{"over the limit", []string{"sh", "-c", "tail /dev/zero"}, false, 137, true},
		{"killed by stop", []string{"sleep", "60"}, true, 137, false},
		{"failing under the limit", []string{"sh", "-c", "exit 1"}, false, 1, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			id := fmt.Sprintf("oom-%d", i)
			if err := env.rt.Create(ctx, runtime.ContainerSpec{ID: id, Image: busyboxRef, MemoryBytes: limit, Command: tc.command}); err != nil {
				t.Fatalf("Create: %v", err)
			}
			if _, err := env.rt.Start(ctx, id); err != nil {
				t.Fatalf("Start: %v", err)
			}
			exits, err := env.rt.Wait(ctx, id)
			if err != nil {
				t.Fatalf("Wait: %v", err)
			}
			if tc.stop {
				if err := env.rt.Stop(ctx, id, "SIGKILL", time.Second); err != nil {
					t.Fatalf("Stop: %v", err)
				}
			}
			ex := <-exits
			if ex.Err != nil || ex.Code != tc.wantCode || ex.OOMKilled != tc.wantOOM {
				t.Fatalf("Wait = %+v, want code %d, OOM killed %v", ex, tc.wantCode, tc.wantOOM)
			}

			st, err := env.rt.Inspect(ctx, id)
			if err != nil || st.State != runtime.StateStopped || st.OOMKilled != tc.wantOOM {
				t.Errorf("Inspect = %+v, %v; want stopped, OOM killed %v", st, err, tc.wantOOM)
			}
			list, err := env.rt.List(ctx)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			found := false
			for _, st := range list {
				if st.ID == id {
					found = true
					if st.OOMKilled != tc.wantOOM {
						t.Errorf("List: %s OOM killed %v, want %v", id, st.OOMKilled, tc.wantOOM)
					}
				}
			}
			if !found {
				t.Errorf("List = %+v, want %s in it", list, id)
			}
			// A restarted agent waits on the stopped container again.
			again, err := env.open(t, testOwner, nil).Wait(ctx, id)
			if err != nil {
				t.Fatalf("Wait from a new handle: %v", err)
			}
			if ex := <-again; ex.Code != tc.wantCode || ex.OOMKilled != tc.wantOOM {
				t.Errorf("Wait from a new handle = %+v, want code %d, OOM killed %v", ex, tc.wantCode, tc.wantOOM)
			}

			// Released, its task is gone and its labels tell how it ended.
			if err := env.rt.Release(ctx, id); err != nil {
				t.Fatalf("Release: %v", err)
			}
			if st, err := env.rt.Inspect(ctx, id); err != nil || st.State != runtime.StateStopped || st.ExitCode != tc.wantCode || st.OOMKilled != tc.wantOOM {
				t.Errorf("Inspect after Release = %+v, %v; want stopped with code %d, OOM killed %v", st, err, tc.wantCode, tc.wantOOM)
			}

			if err := env.rt.Remove(ctx, id); err != nil {
				t.Fatalf("Remove: %v", err)
			}
		})
	}
}
