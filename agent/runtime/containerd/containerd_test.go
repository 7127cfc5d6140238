package containerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/berthproject/berth/agent/runtime"
	"github.com/berthproject/berth/internal/testimage"
)

func TestContainerdImages(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()

	tests := []struct {
		ref  string
		want bool
	}{
		{busyboxRef, true},
		{"localhost/busybox", true},
		{entrypointRef, true},
		{"busybox", false}, // docker.io/library/busybox:latest
		{"localhost/busybox:other", false},
	}
	for _, tc := range tests {
		got, err := env.rt.ImageExists(ctx, tc.ref)
		if err != nil || got != tc.want {
			t.Errorf("ImageExists(%q) = %v, %v; want %v", tc.ref, got, err, tc.want)
		}
	}

	imgs, err := env.rt.ListImages(ctx)
	if err != nil {
		t.Fatalf("ListImages: %v", err)
	}
	found := false
	for _, img := range imgs {
		if img.Name == busyboxRef {
			found = true
			if img.Size <= 0 || !strings.HasPrefix(img.Digest, "sha256:") {
				t.Errorf("image %s: size %d digest %q, want a size and a sha256 digest", img.Name, img.Size, img.Digest)
			}
		}
	}
	if !found {
		t.Errorf("ListImages = %v, want %s in it", imgs, busyboxRef)
	}

	if _, err := env.rt.ImportImage(ctx, strings.NewReader("not a tar")); err == nil {
		t.Errorf("ImportImage of garbage succeeded, want error")
	}
}

func TestContainerdExitCode(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()
	// The process exits before Wait is called; Wait must still report it.
	code := runToExit(t, env.rt, runtime.ContainerSpec{ID: "exit3", Image: "localhost/busybox", Command: []string{"sh", "-c", "exit 3"}})
	if code != 3 {
		t.Errorf("exit code = %d, want 3", code)
	}
	st, err := env.rt.Inspect(ctx, "exit3")
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if st.State != runtime.StateStopped || st.ExitCode != 3 || st.ExitedAt.IsZero() {
		t.Errorf("Inspect = %+v, want stopped with exit code 3 and an exit time", st)
	}
	ch, err := env.rt.Wait(ctx, "exit3")
	if err != nil {
		t.Fatalf("second Wait: %v", err)
	}
	if exit := <-ch; exit.Err != nil || exit.Code != 3 {
		t.Errorf("second Wait = %+v, want code 3", exit)
	}
}

func TestContainerdCommandSemantics(t *testing.T) {
	env := newTestEnv(t, nil)
	tests := []struct {
		name string
		spec runtime.ContainerSpec
		want []string
	}{
		{"image defaults", runtime.ContainerSpec{}, []string{"image-entrypoint image-cmd"}},
		{"command replaces cmd", runtime.ContainerSpec{Command: []string{"a", "b"}}, []string{"image-entrypoint a b"}},
		{"entrypoint clears cmd", runtime.ContainerSpec{Entrypoint: []string{"echo", "ep"}}, []string{"ep"}},
		{"entrypoint and command", runtime.ContainerSpec{Entrypoint: []string{"echo", "ep"}, Command: []string{"c"}}, []string{"ep c"}},
		{
			"env over image env, image workdir",
			runtime.ContainerSpec{
				Entrypoint: []string{"sh", "-c", `echo "$FROM_IMAGE $OVERRIDE $NEW"; pwd; id -u`},
				Env:        []string{"OVERRIDE=spec", "NEW=1"},
			},
			[]string{"yes spec 1", "/www", "0"},
		},
		{
			"workdir and user",
			runtime.ContainerSpec{
				Entrypoint: []string{"sh", "-c", "pwd; id -u; id -g"},
				WorkingDir: "/tmp",
				User:       "nobody",
			},
			[]string{"/tmp", "65534", "65534"},
		},
		{"numeric user", runtime.ContainerSpec{Entrypoint: []string{"id", "-u"}, User: "1234"}, []string{"1234"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			spec.ID = fmt.Sprintf("semantics-%d", i)
			spec.Image = entrypointRef
			if code := runToExit(t, env.rt, spec); code != 0 {
				t.Fatalf("exit code = %d, want 0; output %q", code, logText(t, env.rt, spec.ID, -1))
			}
			waitLogs(t, env.rt, spec.ID, tc.want)
		})
	}
}

func TestContainerdStop(t *testing.T) {
	env := newTestEnv(t, nil)
	tests := []struct {
		name     string
		script   string
		signal   string
		grace    time.Duration
		wantCode int32
	}{
		// The trap runs once the current sleep ends, well within the grace.
		{"exits on SIGTERM", `trap "exit 7" TERM; echo ready; while :; do sleep 0.1; done`, "", time.Minute, 7},
		{"killed after grace", `trap "" TERM; echo ready; while :; do sleep 0.1; done`, "", 300 * time.Millisecond, 137},
		{"custom signal", `trap "exit 9" USR1; echo ready; while :; do sleep 0.1; done`, "SIGUSR1", time.Minute, 9},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			id := fmt.Sprintf("stop-%d", i)
			spec := runtime.ContainerSpec{ID: id, Image: busyboxRef, Command: []string{"sh", "-c", tc.script}}
			if err := env.rt.Create(ctx, spec); err != nil {
				t.Fatalf("Create: %v", err)
			}
			if _, err := env.rt.Start(ctx, id); err != nil {
				t.Fatalf("Start: %v", err)
			}
			waitLogs(t, env.rt, id, []string{"ready"}) // the trap is set
			if err := env.rt.Stop(ctx, id, tc.signal, tc.grace); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			st, err := env.rt.Inspect(ctx, id)
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			if st.State != runtime.StateStopped || st.ExitCode != tc.wantCode {
				t.Errorf("after Stop: %s with code %d, want stopped with %d", st.State, st.ExitCode, tc.wantCode)
			}
			if err := env.rt.Stop(ctx, id, "", time.Second); err != nil {
				t.Errorf("Stop of a stopped container: %v", err)
			}
		})
	}
}

func TestContainerdStopSignalFromSpec(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()
	spec := runtime.ContainerSpec{ID: "stopsig", Image: busyboxRef, StopSignal: "USR2",
		Command: []string{"sh", "-c", `trap "exit 12" USR2; echo ready; while :; do sleep 0.1; done`}}
	if err := env.rt.Create(ctx, spec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := env.rt.Stop(ctx, spec.ID, "", time.Second); err != nil {
		t.Errorf("Stop of a container never started: %v", err)
	}
	if _, err := env.rt.Start(ctx, spec.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitLogs(t, env.rt, spec.ID, []string{"ready"})
	if err := env.rt.Stop(ctx, spec.ID, "", time.Minute); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if st, err := env.rt.Inspect(ctx, spec.ID); err != nil || st.ExitCode != 12 {
		t.Errorf("Inspect = %+v, %v; want exit code 12 from the USR2 trap", st, err)
	}
}

func TestContainerdLogs(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()
	id := "logs"
	code := runToExit(t, env.rt, runtime.ContainerSpec{ID: id, Image: busyboxRef,
		Command: []string{"sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; printf partial"}})
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	all := []string{"line1", "line2", "line3", "line4", "line5", "partial"}
	waitLogs(t, env.rt, id, all)

	tests := []struct {
		tail int64
		want []string
	}{
		{-1, all},
		{0, nil},
		{2, []string{"line5", "partial"}},
		{100, all},
	}
	for _, tc := range tests {
		if got := logText(t, env.rt, id, tc.tail); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("Logs(tail %d) = %q, want %q", tc.tail, got, tc.want)
		}
	}

	// Follow returns once the process has exited and its output is read.
	follow := "follow"
	spec := runtime.ContainerSpec{ID: follow, Image: busyboxRef, Command: []string{"sh", "-c", "echo a; sleep 0.3; echo b >&2"}}
	if err := env.rt.Create(ctx, spec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := env.rt.Start(ctx, follow); err != nil {
		t.Fatalf("Start: %v", err)
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var got []string
	var lines []runtime.LogLine
	err := env.rt.Logs(fctx, follow, runtime.LogOptions{Follow: true, Tail: -1}, func(l runtime.LogLine) error {
		got = append(got, string(l.Line))
		lines = append(lines, l)
		return nil
	})
	if err != nil {
		t.Fatalf("Logs(follow): %v", err)
	}
	if strings.Join(got, "|") != "a|b" {
		t.Fatalf("Logs(follow) = %q, want a then b", got)
	}
	// The log driver keeps the streams apart and stamps each line.
	if lines[0].Stream != runtime.Stdout || lines[1].Stream != runtime.Stderr {
		t.Errorf("streams %v, %v; want stdout then stderr", lines[0].Stream, lines[1].Stream)
	}
	if lines[0].At.IsZero() || lines[1].At.Before(lines[0].At) {
		t.Errorf("times %v, %v; want both set, in order", lines[0].At, lines[1].At)
	}
	// Until cuts by each line's own time.
	var before []string
	if err := env.rt.Logs(ctx, follow, runtime.LogOptions{Tail: -1, Until: lines[0].At}, func(l runtime.LogLine) error {
		before = append(before, string(l.Line))
		return nil
	}); err != nil || strings.Join(before, "|") != "a" {
		t.Errorf("Logs(until the first line) = %q, %v; want a", before, err)
	}
}

func TestContainerdResourceLimits(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()
	const memory = 64 << 20
	id := "limits"
	if err := env.rt.Create(ctx, runtime.ContainerSpec{ID: id, Image: busyboxRef, MemoryBytes: memory, MilliCPUs: 500,
		Command: []string{"sleep", "60"}}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := env.rt.Start(ctx, id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	cont, err := env.rt.Client().LoadContainer(env.rt.ctx(ctx), id)
	if err != nil {
		t.Fatalf("LoadContainer: %v", err)
	}
	spec, err := cont.Spec(env.rt.ctx(ctx))
	if err != nil {
		t.Fatalf("Spec: %v", err)
	}
	res := spec.Linux.Resources
	if res == nil || res.Memory == nil || res.Memory.Limit == nil || *res.Memory.Limit != memory {
		t.Errorf("spec memory = %+v, want limit %d", res, memory)
	}
	if res == nil || res.CPU == nil || res.CPU.Quota == nil || *res.CPU.Quota != 50000 || *res.CPU.Period != 100000 {
		t.Errorf("spec cpu = %+v, want quota 50000 per 100000", res)
	}

	// What the kernel enforces, read from the host's cgroup v1 tree.
	for _, f := range []struct{ path, want string }{
		{"/sys/fs/cgroup/memory" + spec.Linux.CgroupsPath + "/memory.limit_in_bytes", fmt.Sprint(memory)},
		{"/sys/fs/cgroup/cpu" + spec.Linux.CgroupsPath + "/cpu.cfs_quota_us", "50000"},
	} {
		b, err := os.ReadFile(f.path)
		if errors.Is(err, os.ErrNotExist) {
			t.Logf("no %s (not a cgroup v1 host?); checked the spec only", f.path)
			continue
		}
		if err != nil {
			t.Fatalf("read cgroup: %v", err)
		}
		if got := strings.TrimSpace(string(b)); got != f.want {
			t.Errorf("%s = %s, want %s", f.path, got, f.want)
		}
	}
}

func TestContainerdAdoptionAndOwnership(t *testing.T) {
	network := &recordingNetwork{}
	env := newTestEnv(t, network)
	ctx := context.Background()
	ports := []runtime.Port{{Target: 80, Published: 8080, Protocol: "tcp", HostIP: "127.0.0.1"}}
	spec := runtime.ContainerSpec{ID: "adopt", Image: busyboxRef, Command: []string{"sleep", "60"},
		Labels: map[string]string{"berth.service": "web", "team": "a"}, Ports: ports}
	if err := env.rt.Create(ctx, spec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	started, err := env.rt.Start(ctx, spec.ID)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if started.State != runtime.StateRunning || started.Pid == 0 {
		t.Errorf("Start = %+v, want running with a pid", started)
	}
	if err := env.rt.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// A new handle, as after an agent restart, finds the container as it was.
	again := env.open(t, testOwner, network)
	list, err := again.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != 1 {
		t.Fatalf("List = %+v, want the one container", list)
	}
	st := list[0]
	if st.ID != spec.ID || st.State != runtime.StateRunning || st.Pid != started.Pid || st.Address != "127.77.0.1" {
		t.Errorf("List[0] = %+v, want %s running with pid %d at 127.77.0.1", st, spec.ID, started.Pid)
	}
	if len(st.Ports) != 1 || st.Ports[0] != ports[0] {
		t.Errorf("ports = %+v, want %+v", st.Ports, ports)
	}
	if len(st.Labels) != 2 || st.Labels["berth.service"] != "web" || st.Labels["team"] != "a" {
		t.Errorf("labels = %v, want only the user's labels", st.Labels)
	}

	// Another owner on the same namespace sees and touches nothing.
	other := env.open(t, "other-owner", network)
	if list, err := other.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("other owner List = %+v, %v; want empty", list, err)
	}
	if _, err := other.Inspect(ctx, spec.ID); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("other owner Inspect error = %v, want ErrNotFound", err)
	}
	if err := other.Stop(ctx, spec.ID, "KILL", 0); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("other owner Stop error = %v, want ErrNotFound", err)
	}
	if err := other.Remove(ctx, spec.ID); err != nil {
		t.Errorf("other owner Remove: %v", err)
	}
	if st, err := again.Inspect(ctx, spec.ID); err != nil || st.State != runtime.StateRunning {
		t.Errorf("after the other owner's calls: %+v, %v; want still running", st, err)
	}
	if !network.isAttached(spec.ID) {
		t.Errorf("the other owner's Remove detached the container's network")
	}
}

func TestContainerdRemove(t *testing.T) {
	network := &recordingNetwork{}
	env := newTestEnv(t, network)
	ctx := context.Background()
	id := "remove"
	if err := env.rt.Create(ctx, runtime.ContainerSpec{ID: id, Image: busyboxRef, Command: []string{"sh", "-c", "echo hi; sleep 60"}}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := env.rt.Start(ctx, id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitLogs(t, env.rt, id, []string{"hi"})
	if err := env.rt.Remove(ctx, id); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := env.rt.Inspect(ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Inspect after Remove: %v, want ErrNotFound", err)
	}
	if _, err := env.rt.Client().SnapshotService(DefaultSnapshotter).Stat(env.rt.ctx(ctx), id); !errdefs.IsNotFound(err) {
		t.Errorf("snapshot %s after Remove: %v, want not found", id, err)
	}
	if _, err := os.Stat(env.rt.logPath(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("log file after Remove: %v, want it gone", err)
	}
	if network.isAttached(id) {
		t.Errorf("network still attached after Remove")
	}
	if err := env.rt.Remove(ctx, id); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

func TestContainerdErrors(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()
	if err := env.rt.Create(ctx, runtime.ContainerSpec{ID: "dup", Image: busyboxRef}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	tests := []struct {
		name    string
		call    func() error
		want    error
		message string
	}{
		{"missing image", func() error {
			return env.rt.Create(ctx, runtime.ContainerSpec{ID: "noimage", Image: "localhost/absent:1"})
		}, runtime.ErrImageNotFound, "berth image import"},
		{"duplicate id", func() error { return env.rt.Create(ctx, runtime.ContainerSpec{ID: "dup", Image: busyboxRef}) }, runtime.ErrExists, "dup"},
		{"bad stop signal", func() error {
			return env.rt.Create(ctx, runtime.ContainerSpec{ID: "badsig", Image: busyboxRef, StopSignal: "SIGNOPE"})
		}, nil, "SIGNOPE"},
		{"start unknown", func() error { _, err := env.rt.Start(ctx, "ghost"); return err }, runtime.ErrNotFound, "ghost"},
		{"inspect unknown", func() error { _, err := env.rt.Inspect(ctx, "ghost"); return err }, runtime.ErrNotFound, "ghost"},
		{"wait not started", func() error { _, err := env.rt.Wait(ctx, "dup"); return err }, runtime.ErrNotFound, "not been started"},
		{"logs unknown", func() error {
			return env.rt.Logs(ctx, "ghost", runtime.LogOptions{}, func(runtime.LogLine) error { return nil })
		}, runtime.ErrNotFound, "ghost"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil {
				t.Fatalf("no error, want one")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q does not mention %q", err, tc.message)
			}
		})
	}
}

// BenchmarkCreateStart measures creating and starting a busybox `sleep 60`
// container (ns/op); removing it is timed apart, as remove-ms/op.
func BenchmarkCreateStart(b *testing.B) {
	env := newTestEnv(b, nil)
	ctx := context.Background()
	var removing time.Duration
	i := 0
	for b.Loop() {
		id := fmt.Sprintf("bench-%d", i)
		i++
		if err := env.rt.Create(ctx, runtime.ContainerSpec{ID: id, Image: busyboxRef, Command: []string{"sleep", "60"}}); err != nil {
			b.Fatalf("Create: %v", err)
		}
		if _, err := env.rt.Start(ctx, id); err != nil {
			b.Fatalf("Start: %v", err)
		}
		b.StopTimer()
		start := time.Now()
		if err := env.rt.Remove(ctx, id); err != nil {
			b.Fatalf("Remove: %v", err)
		}
		removing += time.Since(start)
		b.StartTimer()
	}
	b.ReportMetric(float64(removing.Milliseconds())/float64(b.N), "remove-ms/op")
}

// TestContainerdImportDockerArchive loads what `docker save` writes and
// runs a container from it.
func TestContainerdImportDockerArchive(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()
	files, err := testimage.BusyboxFiles(testBusybox)
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if err := testimage.WriteDockerArchive(&archive, "localhost/saved:v1", files, testimage.Config{Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}}); err != nil {
		t.Fatal(err)
	}
	imgs, err := env.rt.ImportImage(ctx, &archive)
	if err != nil {
		t.Fatalf("ImportImage of a docker archive: %v", err)
	}
	if len(imgs) != 1 || imgs[0].Name != "localhost/saved:v1" {
		t.Fatalf("imported %+v, want localhost/saved:v1", imgs)
	}
	if code := runToExit(t, env.rt, runtime.ContainerSpec{ID: "saved", Image: "localhost/saved:v1", Command: []string{"sh", "-c", "exit 7"}}); code != 7 {
		t.Fatalf("container from the docker archive exited %d, want 7", code)
	}
}
