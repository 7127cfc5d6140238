package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	ctdruntime "github.com/berthproject/berth/agent/runtime/containerd"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
)

// resourcesCompose has a memory hog under a 16 MiB limit that must not be
// restarted (tail buffers its one endless line), and a sleeper with CPU
// and memory limits.
const resourcesCompose = `
services:
  hog:
    image: localhost/busybox:latest
    command: ["sh", "-c", "tail /dev/zero"]
    deploy:
      resources:
        limits:
          memory: 16M
      restart_policy:
        condition: none
  capped:
    image: localhost/busybox:latest
    command: ["sleep", "3600"]
    deploy:
      resources:
        limits:
          cpus: "0.5"
          memory: 32M
`

// limitedTask is a row of berth ps -o json with how its container ended.
type limitedTask struct {
	task
	ExitCode  int32 `json:"exitCode"`
	OOMKilled bool  `json:"oomKilled"`
}

// TestMemoryLimitKillIsShown: the kernel kills a container that goes over
// its Compose memory limit; berth ps shows its task failed (oom) with exit
// code 137, and the restart policy (none) starts no other. The limits of a
// running container are the ones the kernel enforces.
func TestMemoryLimitKillIsShown(t *testing.T) {
	c := newCluster(t)
	c.startAgent("alpha")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", resourcesCompose), "-p", "limits")

	var tasks []limitedTask
	eventually(t, 60*time.Second, func() (bool, string) {
		out := c.mustBerth("ps", "limits/hog", "--all", "-o", "json")
		tasks = nil
		if err := json.Unmarshal([]byte(out), &tasks); err != nil {
			t.Fatalf("berth ps -o json: %v\n%s", err, out)
		}
		return len(tasks) > 0 && tasks[0].State == "failed", fmt.Sprintf("want the hog's task failed, have %+v", tasks)
	})
	hog := tasks[0]
	if !hog.OOMKilled || hog.ExitCode != 137 || hog.Error != "out of memory: killed at the 16 MiB limit (exit code 137)" {
		t.Errorf("hog's task = %+v, want OOM killed with exit code 137 and the limit in its error", hog)
	}
	table := c.mustBerth("ps", "limits/hog", "--all")
	if !strings.Contains(table, "failed (oom)") {
		t.Errorf("berth ps table does not show the task failed (oom):\n%s", table)
	}

	capped := c.waitRunning("limits/capped", 1, 60*time.Second)[0]
	for _, f := range []struct{ controller, file, want string }{
		{"cpu", "cpu.cfs_quota_us", "50000"},
		{"memory", "memory.limit_in_bytes", fmt.Sprint(32 << 20)},
	} {
		got, err := readCgroup(t, capped.ID, f.controller, f.file)
		if errors.Is(err, os.ErrNotExist) {
			t.Logf("no %s cgroup v1 file %s (not a cgroup v1 host?): %v", f.controller, f.file, err)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if got != f.want {
			t.Errorf("%s of the capped container = %s, want %s", f.file, got, f.want)
		}
	}

	// Checked last: a replacement would have had the whole test to appear.
	if hogs := c.ps("limits/hog", "--all"); len(hogs) != 1 {
		t.Errorf("hog has %d tasks, want 1: restart_policy none replaces nothing; %+v", len(hogs), hogs)
	}
}

// readCgroup reads file of container id's cgroup v1 controller, from the
// host's tree.
func readCgroup(t *testing.T, id, controller, file string) (string, error) {
	t.Helper()
	client, err := containerd.New(ctdruntime.DefaultAddress)
	if err != nil {
		return "", fmt.Errorf("connect to containerd: %w", err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), namespace), 10*time.Second)
	defer cancel()
	cont, err := client.LoadContainer(ctx, id)
	if err != nil {
		return "", fmt.Errorf("container %s: %w", id, err)
	}
	spec, err := cont.Spec(ctx)
	if err != nil {
		return "", fmt.Errorf("spec of container %s: %w", id, err)
	}
	b, err := os.ReadFile("/sys/fs/cgroup/" + controller + spec.Linux.CgroupsPath + "/" + file)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
