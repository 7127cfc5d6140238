package worker

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthproject/berth/agent/runtime"
	"github.com/berthproject/berth/agent/runtime/fake"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait for the worker; it only ends tests that
// would hang.
const waitTimeout = 10 * time.Second

// recordingRuntime is the fake runtime, counting creations and telling
// the test about removals.
type recordingRuntime struct {
	*fake.Runtime
	mu      sync.Mutex
	creates int
	removed chan string
}

func newRecordingRuntime() *recordingRuntime {
	return &recordingRuntime{Runtime: fake.New(), removed: make(chan string, 100)}
}

func (r *recordingRuntime) Create(ctx context.Context, spec runtime.ContainerSpec) error {
	r.mu.Lock()
	r.creates++
	r.mu.Unlock()
	return r.Runtime.Create(ctx, spec)
}

func (r *recordingRuntime) Remove(ctx context.Context, id string) error {
	err := r.Runtime.Remove(ctx, id)
	r.removed <- id
	return err
}

func (r *recordingRuntime) createCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.creates
}

// waitRemoved waits until the worker removed every container of ids.
func (r *recordingRuntime) waitRemoved(t *testing.T, ids ...string) {
	t.Helper()
	missing := map[string]bool{}
	for _, id := range ids {
		missing[id] = true
	}
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for len(missing) > 0 {
		select {
		case got := <-r.removed:
			delete(missing, got)
		case <-deadline.C:
			t.Fatalf("containers %v were not removed", missing)
		}
	}
}

type report struct {
	id     string
	status *berthv1.TaskStatus
}

// harness runs a worker on a recording fake runtime and collects its
// reports.
type harness struct {
	t       *testing.T
	rt      *recordingRuntime
	w       *Worker
	reports chan report
	backlog map[string][]*berthv1.TaskStatus
	cancel  context.CancelFunc
}

// newHarness starts a worker on rt, whose containers it adopts.
func newHarness(t *testing.T, rt *recordingRuntime) *harness {
	t.Helper()
	return newHarnessOn(t, rt, rt)
}

// newHarnessOn is newHarness with the worker driving wrapped, a runtime
// over rt.
func newHarnessOn(t *testing.T, rt *recordingRuntime, wrapped Runtime) *harness {
	t.Helper()
	if err := rt.AddImage("busybox"); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, rt: rt, reports: make(chan report, 1000), backlog: map[string][]*berthv1.TaskStatus{}}
	h.w = New(wrapped, func(id string, st *berthv1.TaskStatus) { h.reports <- report{id, st} }, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	if err := h.w.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(h.stop)
	return h
}

// stop ends the worker and waits for its runners; calling it again does
// nothing.
func (h *harness) stop() {
	h.cancel()
	h.w.Wait()
}

// next returns the next report about task id, keeping those about other
// tasks for later.
func (h *harness) next(id string) *berthv1.TaskStatus {
	h.t.Helper()
	if q := h.backlog[id]; len(q) > 0 {
		h.backlog[id] = q[1:]
		return q[0]
	}
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		select {
		case r := <-h.reports:
			if r.id == id {
				return r.status
			}
			h.backlog[r.id] = append(h.backlog[r.id], r.status)
		case <-deadline.C:
			h.t.Fatalf("no report about task %s", id)
			return nil
		}
	}
}

// expect checks the next reports about task id, in order, and returns the
// last one.
func (h *harness) expect(id string, states ...berthv1.TaskState) *berthv1.TaskStatus {
	h.t.Helper()
	var got []berthv1.TaskState
	var last *berthv1.TaskStatus
	for range states {
		last = h.next(id)
		got = append(got, last.State)
	}
	if !slices.Equal(got, states) {
		h.t.Fatalf("task %s reported %v, want %v", id, got, states)
	}
	return last
}

// run assigns tasks and waits until each reports running.
func (h *harness) run(tasks ...*berthv1.Task) {
	h.t.Helper()
	h.w.Assign(&berthv1.Assignments{Tasks: tasks})
	for _, tk := range tasks {
		h.expect(tk.GetMeta().GetId(), accepted, preparing, starting, running)
	}
}

func (h *harness) containerState(id string) (runtime.State, error) {
	st, err := h.rt.Inspect(context.Background(), id)
	return st.State, err
}

const (
	assignedState = berthv1.TaskState_TASK_STATE_ASSIGNED
	accepted      = berthv1.TaskState_TASK_STATE_ACCEPTED
	preparing     = berthv1.TaskState_TASK_STATE_PREPARING
	starting      = berthv1.TaskState_TASK_STATE_STARTING
	running       = berthv1.TaskState_TASK_STATE_RUNNING
	complete      = berthv1.TaskState_TASK_STATE_COMPLETE
	shutdown      = berthv1.TaskState_TASK_STATE_SHUTDOWN
	failed        = berthv1.TaskState_TASK_STATE_FAILED
	rejected      = berthv1.TaskState_TASK_STATE_REJECTED
)

func newTask(id string) *berthv1.Task {
	return &berthv1.Task{
		Meta: &berthv1.Meta{Id: id},
		Spec: &berthv1.ServiceSpec{
			Image:   "busybox",
			Command: []string{"httpd", "-f"},
			Env:     []string{"A=1"},
			Ports: []*berthv1.PortSpec{
				{Target: 80, Published: 8080, Protocol: "tcp", Mode: berthv1.PublishMode_PUBLISH_MODE_HOST},
				{Target: 81, Protocol: "tcp"}, // not published: no host port
				// Ingress: the node network's rules publish it on every
				// node, not the container's node.
				{Target: 82, Published: 8082, Protocol: "tcp"},
			},
			StopSignal:      "SIGTERM",
			StopGracePeriod: durationpb.New(10 * time.Millisecond),
		},
		DesiredState: running,
		Status:       &berthv1.TaskStatus{State: assignedState},
	}
}

func withDesired(t *berthv1.Task, state berthv1.TaskState) *berthv1.Task {
	t.DesiredState = state
	return t
}

func TestAssignedTaskRuns(t *testing.T) {
	h := newHarness(t, newRecordingRuntime())
	h.w.Assign(&berthv1.Assignments{Tasks: []*berthv1.Task{newTask("t1")}})
	st := h.expect("t1", accepted, preparing, starting, running)
	if st.ContainerId != "t1" || st.Pid == 0 || st.Address == "" {
		t.Fatalf("running status lacks container details: %v", st)
	}
	if len(st.Ports) != 1 || st.Ports[0].Published != 8080 {
		t.Fatalf("running status ports = %v, want 8080 published", st.Ports)
	}
	spec, ok := h.rt.Spec("t1")
	if !ok {
		t.Fatal("no container t1")
	}
	if spec.Image != "busybox" || !slices.Equal(spec.Command, []string{"httpd", "-f"}) || !slices.Equal(spec.Env, []string{"A=1"}) || len(spec.Ports) != 1 || spec.Ports[0].Published != 8080 {
		t.Fatalf("container spec = %+v", spec)
	}
	if state, err := h.containerState("t1"); err != nil || state != runtime.StateRunning {
		t.Fatalf("container is %v (%v), want running", state, err)
	}
	statuses := h.w.Statuses()
	if len(statuses) != 1 || statuses[0].TaskId != "t1" || statuses[0].Status.State != running {
		t.Fatalf("Statuses() = %v, want t1 running", statuses)
	}
}

func TestContainerExit(t *testing.T) {
	tests := []struct {
		name    string
		code    int32
		oom     bool  // the kernel kills it for memory instead
		limit   int64 // memory limit of the task
		state   berthv1.TaskState
		err     string
		wantOOM bool
	}{
		{"exit 0", 0, false, 0, complete, "", false},
		{"exit 3", 3, false, 0, failed, "non-zero exit (3)", false},
		{"oom at the limit", 137, true, 64 << 20, failed, "out of memory: killed at the 64 MiB limit (exit code 137)", true},
		{"oom without a limit", 137, true, 0, failed, "out of memory: killed by the kernel (exit code 137)", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, newRecordingRuntime())
			tk := newTask("t1")
			if tt.limit > 0 {
				tk.Spec.Limits = &berthv1.Resources{MemoryBytes: tt.limit}
			}
			h.run(tk)
			exit := func() error { return h.rt.Exit("t1", tt.code) }
			if tt.oom {
				exit = func() error { return h.rt.OOMKill("t1") }
			}
			if err := exit(); err != nil {
				t.Fatal(err)
			}
			st := h.expect("t1", tt.state)
			if st.ExitCode != tt.code || (tt.err == "") != (st.Err == "") || !strings.Contains(st.Err, tt.err) || st.OomKilled != tt.wantOOM {
				t.Errorf("reported exit code %d err %q oom_killed %v, want %d, %q, %v", st.ExitCode, st.Err, st.OomKilled, tt.code, tt.err, tt.wantOOM)
			}
			if spec, _ := h.rt.Spec("t1"); spec.MemoryBytes != tt.limit {
				t.Errorf("container memory limit = %d, want %d", spec.MemoryBytes, tt.limit)
			}
		})
	}
}

// An agent that restarts after the kernel killed a container for memory
// still reports the kill: in the statuses of its hello, and when it finds
// the container of a task it last saw running stopped.
func TestOOMKilledContainerIsAdopted(t *testing.T) {
	rt := newRecordingRuntime()
	if err := rt.AddImage("busybox"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	oomKilled := func(id string) {
		t.Helper()
		if err := rt.Runtime.Create(ctx, runtime.ContainerSpec{ID: id, Image: "busybox", MemoryBytes: 16 << 20}); err != nil {
			t.Fatal(err)
		}
		if _, err := rt.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := rt.OOMKill(id); err != nil {
			t.Fatal(err)
		}
	}
	oomKilled("t1")
	h := newHarness(t, rt)
	if st := h.w.Statuses(); len(st) != 1 || st[0].Status.State != failed || !st[0].Status.OomKilled || !strings.Contains(st[0].Status.Err, "out of memory") {
		t.Fatalf("Statuses() = %v, want t1 failed, OOM killed", st)
	}

	oomKilled("t2") // not listed at start: the runner inspects it
	tk := newTask("t2")
	tk.Spec.Limits = &berthv1.Resources{MemoryBytes: 16 << 20}
	tk.Status = &berthv1.TaskStatus{State: running, ContainerId: "t2"}
	h.w.Assign(&berthv1.Assignments{Tasks: []*berthv1.Task{tk}})
	st := h.expect("t2", failed)
	if !st.OomKilled || st.ExitCode != 137 || st.Err != "out of memory: killed at the 16 MiB limit (exit code 137)" {
		t.Fatalf("reported %v, want failed at the 16 MiB limit with exit code 137", st)
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{512, "512 bytes"},
		{1 << 10, "1 KiB"},
		{16 << 20, "16 MiB"},
		{1536 << 20, "1.5 GiB"},
		{1_000_000_000, "953.7 MiB"},
	}
	for _, tt := range tests {
		if got := byteSize(tt.n); got != tt.want {
			t.Errorf("byteSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestDesiredShutdownStopsTheContainer(t *testing.T) {
	tests := []struct {
		name       string
		ignoreStop bool
		exitCode   int32
	}{
		{"stops on its signal", false, 128 + 15},
		{"killed after the grace period", true, 128 + 9},
	}
	for _, tt := range tests {
		h := newHarness(t, newRecordingRuntime())
		h.run(newTask("t1"))
		if tt.ignoreStop {
			if err := h.rt.IgnoreStopSignal("t1"); err != nil {
				t.Fatal(err)
			}
		}
		h.w.Assign(&berthv1.Assignments{Tasks: []*berthv1.Task{withDesired(newTask("t1"), shutdown)}})
		if st := h.expect("t1", shutdown); st.ExitCode != tt.exitCode {
			t.Errorf("%s: exit code %d, want %d", tt.name, st.ExitCode, tt.exitCode)
		}
		if state, err := h.containerState("t1"); err != nil || state != runtime.StateStopped {
			t.Errorf("%s: container is %v (%v), want stopped and kept", tt.name, state, err)
		}
		h.stop()
	}
}

func TestShutdownBeforeStartReportsShutdown(t *testing.T) {
	h := newHarness(t, newRecordingRuntime())
	h.w.Assign(&berthv1.Assignments{Tasks: []*berthv1.Task{withDesired(newTask("t1"), shutdown)}})
	h.expect("t1", shutdown)
	if n := h.rt.createCount(); n != 0 {
		t.Fatalf("%d containers created for a task not desired to run", n)
	}
}

func TestRemovedTaskRemovesItsContainer(t *testing.T) {
	h := newHarness(t, newRecordingRuntime())
	h.run(newTask("t1"))
	h.w.Assign(&berthv1.Assignments{Removed: []string{"t1"}})
	h.rt.waitRemoved(t, "t1")
	if _, err := h.containerState("t1"); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("container t1 still exists (%v)", err)
	}
}

func TestFullAssignmentRemovesTheRest(t *testing.T) {
	rt := newRecordingRuntime()
	// A container left by an earlier run of the agent, for a task the
	// control plane no longer has.
	if err := rt.AddImage("busybox"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := rt.Runtime.Create(ctx, runtime.ContainerSpec{ID: "stale", Image: "busybox"}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Start(ctx, "stale"); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, rt)
	h.run(newTask("keep"), newTask("drop"))
	h.w.Assign(&berthv1.Assignments{Full: true, Tasks: []*berthv1.Task{newTask("keep")}})
	h.rt.waitRemoved(t, "drop", "stale")
	if state, err := h.containerState("keep"); err != nil || state != runtime.StateRunning {
		t.Fatalf("container keep is %v (%v), want running", state, err)
	}
}

func TestMissingImageRejectsTheTask(t *testing.T) {
	h := newHarness(t, newRecordingRuntime())
	tk := newTask("t1")
	tk.Spec.Image = "example.com/nothere:1"
	h.w.Assign(&berthv1.Assignments{Tasks: []*berthv1.Task{tk}})
	st := h.expect("t1", accepted, preparing, rejected)
	if !strings.Contains(st.Err, "berth image import") || !strings.Contains(st.Err, "nothere") {
		t.Fatalf("rejection %q does not name the image and how to load it", st.Err)
	}
	if n := h.rt.createCount(); n != 0 {
		t.Fatalf("%d containers created without the image", n)
	}
}

func TestRunningContainerIsAdopted(t *testing.T) {
	rt := newRecordingRuntime()
	if err := rt.AddImage("busybox"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := rt.Runtime.Create(ctx, runtime.ContainerSpec{ID: "t1", Image: "busybox"}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Start(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, rt)
	if st := h.w.Statuses(); len(st) != 1 || st[0].TaskId != "t1" || st[0].Status.State != running {
		t.Fatalf("Statuses() = %v, want the adopted t1 running", st)
	}
	tk := newTask("t1")
	tk.Status = &berthv1.TaskStatus{State: running, ContainerId: "t1"}
	h.w.Assign(&berthv1.Assignments{Full: true, Tasks: []*berthv1.Task{tk}})
	if err := rt.Exit("t1", 3); err != nil {
		t.Fatal(err)
	}
	if st := h.expect("t1", failed); st.ExitCode != 3 {
		t.Fatalf("exit code %d, want 3", st.ExitCode)
	}
	if n := rt.createCount(); n != 0 {
		t.Fatalf("%d containers created for an adopted task", n)
	}
}

func TestRunningTaskWithoutContainerFails(t *testing.T) {
	h := newHarness(t, newRecordingRuntime())
	tk := newTask("t1")
	tk.Status = &berthv1.TaskStatus{State: running, ContainerId: "t1"}
	h.w.Assign(&berthv1.Assignments{Tasks: []*berthv1.Task{tk}})
	if st := h.expect("t1", failed); !strings.Contains(st.Err, "container is gone") {
		t.Fatalf("err %q does not say the container is gone", st.Err)
	}
	if n := h.rt.createCount(); n != 0 {
		t.Fatalf("a task the control plane saw running was started again")
	}
}

// When the agent stops, its containers keep running for the next agent to
// adopt: nothing may be reported as failed.
func TestStoppingTheWorkerReportsNoFailure(t *testing.T) {
	h := newHarness(t, newRecordingRuntime())
	var tasks []*berthv1.Task
	for _, id := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"} {
		tasks = append(tasks, newTask(id))
	}
	h.run(tasks...)
	h.stop()
	close(h.reports)
	for id, q := range h.backlog {
		for _, st := range q {
			t.Errorf("task %s reported %v (%s) while starting", id, st.State, st.Err)
		}
	}
	for r := range h.reports {
		t.Errorf("task %s reported %v (%s) while the worker stopped", r.id, r.status.State, r.status.Err)
	}
	for _, tk := range tasks {
		if state, err := h.containerState(tk.GetMeta().GetId()); err != nil || state != runtime.StateRunning {
			t.Errorf("container %s is %v (%v), want it left running", tk.GetMeta().GetId(), state, err)
		}
	}
}

// TestHealthCheck runs a task whose check passes, then fails: the worker
// reports it healthy, then failed as unhealthy, and stops its container.
func TestHealthCheck(t *testing.T) {
	h := newHarness(t, newRecordingRuntime())
	defer h.stop()
	var healthy atomic.Bool
	healthy.Store(true)
	h.rt.SetExec("t1", func(cmd []string) (runtime.ExecResult, error) {
		if !slices.Equal(cmd, []string{"test", "-f", "/ok"}) {
			return runtime.ExecResult{ExitCode: 2, Output: []byte("unexpected command")}, nil
		}
		if healthy.Load() {
			return runtime.ExecResult{}, nil
		}
		return runtime.ExecResult{ExitCode: 1, Output: []byte("no /ok")}, nil
	})
	tk := newTask("t1")
	tk.Spec.Healthcheck = &berthv1.HealthCheck{
		Test:     []string{"CMD", "test", "-f", "/ok"},
		Interval: durationpb.New(5 * time.Millisecond),
		Retries:  2,
	}
	h.w.Assign(&berthv1.Assignments{Tasks: []*berthv1.Task{tk}})
	// Starting from the report that says running: a task with a check
	// takes no traffic before it passes.
	if st := h.expect("t1", accepted, preparing, starting, running); st.Health != berthv1.Health_HEALTH_STARTING {
		t.Fatalf("health when running = %v, want starting", st.Health)
	}
	if st := h.expect("t1", running); st.Health != berthv1.Health_HEALTH_STARTING {
		t.Fatalf("first health report = %v, want starting", st.Health)
	}
	if st := h.expect("t1", running); st.Health != berthv1.Health_HEALTH_HEALTHY {
		t.Fatalf("health = %v, want healthy", st.Health)
	}
	healthy.Store(false)
	st := h.expect("t1", failed)
	if st.Health != berthv1.Health_HEALTH_UNHEALTHY || !strings.Contains(st.Err, "unhealthy") || !strings.Contains(st.Err, "no /ok") {
		t.Fatalf("failure = health %v err %q, want unhealthy with the probe's output", st.Health, st.Err)
	}
	// The failure is reported first; the container is stopped right after.
	deadline := time.Now().Add(waitTimeout)
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for {
		state, err := h.containerState("t1")
		if err == nil && state == runtime.StateStopped {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("container after the task turned unhealthy: %v %v, want stopped", state, err)
		}
		<-poll.C
	}
}

func TestContainerSpecCarriesNetworksAndResolver(t *testing.T) {
	task := newTask("t1")
	task.App = "shop"
	task.Spec.Hostname = "web-1"
	task.Spec.Dns = []string{"192.0.2.53"}
	task.Spec.DnsSearch = []string{"corp.example"}
	task.Spec.DnsOptions = []string{"ndots:2"}
	task.Spec.ExtraHosts = []*berthv1.ExtraHost{{Hostname: "db.example", Address: "192.0.2.10"}}
	task.Networks = []*berthv1.TaskNetwork{
		{NetworkId: "n1", Network: "shop_front", Address: "10.128.0.5/24"},
		{NetworkId: "n2", Network: "shop_back", Address: "10.128.1.7/24", Internal: true},
	}
	cs := containerSpec("t1", task)
	want := []runtime.NetworkInterface{
		{NetworkID: "n1", Network: "shop_front", Address: "10.128.0.5/24"},
		{NetworkID: "n2", Network: "shop_back", Address: "10.128.1.7/24", Internal: true},
	}
	if !slices.Equal(cs.Networks, want) {
		t.Errorf("networks = %+v, want %+v", cs.Networks, want)
	}
	if cs.Hostname != "web-1" || !slices.Equal(cs.DNS.Servers, []string{"192.0.2.53"}) || !slices.Equal(cs.DNS.Options, []string{"ndots:2"}) {
		t.Errorf("hostname %q, DNS %+v", cs.Hostname, cs.DNS)
	}
	// The app's name is the first search domain: SERVICE.APP resolves.
	if !slices.Equal(cs.DNS.Search, []string{"shop", "corp.example"}) {
		t.Errorf("search = %v, want the app first", cs.DNS.Search)
	}
	if !slices.Equal(cs.DNS.ExtraHosts, []runtime.HostEntry{{Hostname: "db.example", Address: "192.0.2.10"}}) {
		t.Errorf("extra hosts = %+v", cs.DNS.ExtraHosts)
	}
}
