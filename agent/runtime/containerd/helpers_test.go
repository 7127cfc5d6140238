package containerd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/berthproject/berth/agent/files"
	"github.com/berthproject/berth/agent/runtime"
	"github.com/berthproject/berth/agent/runtime/jsonlog"
	"github.com/berthproject/berth/internal/containerdtest"
	"github.com/berthproject/berth/internal/testimage"
)

func TestMain(m *testing.M) {
	// The runtime runs this test binary as its containers' log driver.
	jsonlog.RunDriverIfAsked()
	goleak.VerifyTestMain(m)
}

const (
	testBusybox   = "/usr/bin/busybox"
	testOwner     = "test-owner"
	busyboxRef    = "localhost/busybox:latest"
	entrypointRef = "localhost/entrypoint:latest"
)

// testImages builds the test image archives once per test binary: busybox
// with Cmd ["sh"], and the same files with an ENTRYPOINT, CMD, env and
// working directory to override.
var testImages = sync.OnceValues(func() (map[string][]byte, error) {
	files, err := testimage.BusyboxFiles(testBusybox)
	if err != nil {
		return nil, err
	}
	configs := map[string]testimage.Config{
		busyboxRef: {Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}},
		entrypointRef: {
			Env:        []string{"PATH=/bin", "FROM_IMAGE=yes", "OVERRIDE=image"},
			Entrypoint: []string{"echo", "image-entrypoint"},
			Cmd:        []string{"image-cmd"},
			WorkingDir: "/www",
		},
	}
	out := map[string][]byte{}
	for ref, cfg := range configs {
		var buf bytes.Buffer
		if err := testimage.WriteOCIArchive(&buf, ref, files, cfg); err != nil {
			return nil, err
		}
		out[ref] = buf.Bytes()
	}
	return out, nil
})

// testEnv is one test's containerd namespace with the test images in it.
type testEnv struct {
	ns       string
	stateDir string
	// filesRoot holds the tmpfs of the containers' files, instead of
	// files.DefaultRoot, which the node's agents use.
	filesRoot string
	rt        *Runtime
}

// newTestEnv connects a runtime to a namespace of its own, with the test
// images imported, and removes everything in the namespace when the test
// ends. It skips the test when containerd is not running.
func newTestEnv(tb testing.TB, network runtime.Network) *testEnv {
	tb.Helper()
	if _, err := os.Stat(DefaultAddress); err != nil {
		tb.Skipf("containerd is not running (no %s; `make setup` starts it): %v", DefaultAddress, err)
	}
	if _, err := os.Stat(testBusybox); err != nil {
		tb.Skipf("no %s to build the test image (apt-get install busybox-static): %v", testBusybox, err)
	}
	archives, err := testImages()
	if err != nil {
		tb.Fatalf("build test images: %v", err)
	}
	suffix := make([]byte, 6)
	if _, err := rand.Read(suffix); err != nil {
		tb.Fatal(err)
	}
	env := &testEnv{ns: "berth-test-" + hex.EncodeToString(suffix), stateDir: tb.TempDir(), filesRoot: tb.TempDir()}
	// Cleanup gets a handle of its own: tests may close theirs.
	admin := env.open(tb, testOwner, nil)
	tb.Cleanup(func() {
		if err := containerdtest.CleanupNamespace(admin.Client(), env.ns); err != nil {
			tb.Error(err)
		}
		// The containers went without Remove: their files' tmpfs are
		// still mounted.
		ids, err := admin.cfg.Files.List()
		if err != nil {
			tb.Error(err)
		}
		for _, id := range ids {
			if err := admin.cfg.Files.Remove(id); err != nil {
				tb.Error(err)
			}
		}
	})
	env.rt = env.open(tb, testOwner, network)
	for ref, archive := range archives {
		if _, err := env.rt.ImportImage(context.Background(), bytes.NewReader(archive)); err != nil {
			tb.Fatalf("import %s: %v", ref, err)
		}
	}
	return env
}

// open returns another runtime handle on the test's namespace and state.
func (e *testEnv) open(tb testing.TB, owner string, network runtime.Network) *Runtime {
	tb.Helper()
	dirs, err := files.NewDirs(e.filesRoot, owner)
	if err != nil {
		tb.Fatal(err)
	}
	rt, err := New(context.Background(), Config{
		Namespace: e.ns,
		Owner:     owner,
		StateDir:  e.stateDir,
		Network:   network,
		Files:     dirs,
	})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { rt.Close() })
	return rt
}

// eventually polls cond until it holds or the deadline passes.
func eventually(tb testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %v: %s; last seen: %s", timeout, what, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logText returns container id's output lines (all when tail < 0).
func logText(tb testing.TB, rt runtime.Runtime, id string, tail int64) []string {
	tb.Helper()
	var lines []string
	err := rt.Logs(context.Background(), id, runtime.LogOptions{Tail: tail}, func(l runtime.LogLine) error {
		lines = append(lines, string(l.Line))
		return nil
	})
	if err != nil {
		tb.Fatalf("Logs(%s): %v", id, err)
	}
	return lines
}

// waitLogs polls until container id's whole output is want.
func waitLogs(tb testing.TB, rt runtime.Runtime, id string, want []string) {
	tb.Helper()
	eventually(tb, 10*time.Second, "logs of "+id+" = "+strings.Join(want, "|"), func() (bool, string) {
		got := logText(tb, rt, id, -1)
		return strings.Join(got, "|") == strings.Join(want, "|"), strings.Join(got, "|")
	})
}

// runToExit creates and starts spec, waits for its exit and returns the
// exit code.
func runToExit(tb testing.TB, rt runtime.Runtime, spec runtime.ContainerSpec) int32 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rt.Create(ctx, spec); err != nil {
		tb.Fatalf("Create(%s): %v", spec.ID, err)
	}
	if _, err := rt.Start(ctx, spec.ID); err != nil {
		tb.Fatalf("Start(%s): %v", spec.ID, err)
	}
	ch, err := rt.Wait(ctx, spec.ID)
	if err != nil {
		tb.Fatalf("Wait(%s): %v", spec.ID, err)
	}
	exit := <-ch
	if exit.Err != nil {
		tb.Fatalf("Wait(%s): %v", spec.ID, exit.Err)
	}
	return exit.Code
}

// recordingNetwork is a Network that attaches nothing (containers stay in
// the host namespace) but hands out addresses and records calls.
type recordingNetwork struct {
	mu       sync.Mutex
	attached map[string][]runtime.Port
	detached []string
}

func (n *recordingNetwork) Attach(ctx context.Context, spec runtime.ContainerSpec) (runtime.Attachment, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.attached == nil {
		n.attached = map[string][]runtime.Port{}
	}
	n.attached[spec.ID] = spec.Ports
	return runtime.Attachment{IP: "127.77.0.1"}, nil
}

func (n *recordingNetwork) Detach(ctx context.Context, id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.attached[id]; !ok {
		return nil
	}
	delete(n.attached, id)
	n.detached = append(n.detached, id)
	return nil
}

func (n *recordingNetwork) isAttached(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.attached[id]
	return ok
}
