// Package fake implements runtime.Runtime in memory, for unit tests and
// the scale harness: nothing runs, and tests drive exits, logs, exec
// answers and failures.
package fake

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/berthproject/berth/agent/runtime"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/imageref"
)

// Runtime is a runtime.Runtime in memory, for unit tests and scale tests:
// operations are quick and nothing runs. Containers run until Exit or Stop ends them.
// It is safe for concurrent use.
type Runtime struct {
	mu         sync.Mutex
	images     map[string]runtime.Image
	containers map[string]*fakeContainer
	failNext   map[string]error
	nextPid    uint32
	nextIP     uint32
	// execs and healthchecks are set by SetExec and SetImageHealthcheck.
	execs        map[string]ExecFunc
	healthchecks map[string]*berthv1.HealthCheck
	// sessions and stats are set by SetExecSession and SetStats.
	sessions map[string]SessionFunc
	stats    map[string]runtime.ContainerStats
	// pull and pushed are set by SetPull and read by Pushed.
	pull   PullFunc
	pushed []string
	// sim and rng are set by NewWith; rng is guarded by mu.
	sim Options
	rng *rand.Rand
}

type fakeContainer struct {
	spec      runtime.ContainerSpec
	status    runtime.Status
	proc      *fakeProc // the current or last process
	ignoreSig bool      // the process ignores its stop signal
	logs      []runtime.LogLine
	logged    chan struct{} // closed and replaced when a line is appended
	released  bool          // Release was called since the last start
}

// fakeProc is one run of a container's process.
type fakeProc struct {
	exited    chan struct{} // closed when the process exits, after code, at and oomKilled are set
	code      int32
	at        time.Time
	oomKilled bool
}

var _ runtime.Runtime = (*Runtime)(nil)

// New returns an empty fake runtime.
func New() *Runtime {
	return &Runtime{
		images:     map[string]runtime.Image{},
		containers: map[string]*fakeContainer{},
		failNext:   map[string]error{},
		nextPid:    1000,
	}
}

// AddImage puts image ref (normalized) into the fake's store.
func (f *Runtime) AddImage(ref string) error {
	name, err := imageref.Normalize(ref)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images[name] = runtime.Image{Name: name, Digest: "sha256:fake-" + name, Size: 1 << 20, CreatedAt: time.Now()}
	return nil
}

// FailNext makes the next call of the runtime.Runtime method named op (like
// "Create" or "Start") return err instead of doing anything.
func (f *Runtime) FailNext(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext[op] = err
}

// Exit ends container id's running process with code, as if it exited.
func (f *Runtime) Exit(id string, code int32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.running(id)
	if err != nil {
		return err
	}
	c.exit(code)
	return nil
}

// running returns container id when its process runs; f.mu is held.
func (f *Runtime) running(id string) (*fakeContainer, error) {
	c, ok := f.containers[id]
	if !ok {
		return nil, fmt.Errorf("fake runtime: container %s: %w", id, runtime.ErrNotFound)
	}
	if c.status.State != runtime.StateRunning {
		return nil, fmt.Errorf("fake runtime: container %s is %s, not running", id, c.status.State)
	}
	return c, nil
}

// OOMKill ends container id's running process as the kernel does when it
// goes over its memory limit: SIGKILL (exit code 137), with the exit and
// the status saying OOMKilled.
func (f *Runtime) OOMKill(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.running(id)
	if err != nil {
		return err
	}
	c.status.OOMKilled, c.proc.oomKilled = true, true
	c.exit(128 + int32(syscall.SIGKILL))
	return nil
}

// IgnoreStopSignal makes container id's process ignore the stop signal,
// so Stop has to wait out its grace period and kill it.
func (f *Runtime) IgnoreStopSignal(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return fmt.Errorf("fake runtime: container %s: %w", id, runtime.ErrNotFound)
	}
	c.ignoreSig = true
	return nil
}

// WriteLog appends a line to container id's output.
func (f *Runtime) WriteLog(id string, stream runtime.LogStream, line string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return fmt.Errorf("fake runtime: container %s: %w", id, runtime.ErrNotFound)
	}
	c.logs = append(c.logs, runtime.LogLine{Stream: stream, At: time.Now(), Line: []byte(line)})
	close(c.logged)
	c.logged = make(chan struct{})
	return nil
}

// Spec returns the spec container id was created with.
func (f *Runtime) Spec(id string) (runtime.ContainerSpec, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return runtime.ContainerSpec{}, false
	}
	return c.spec, true
}

// exit records the process's end; f.mu must be held.
func (c *fakeContainer) exit(code int32) {
	c.status.State = runtime.StateStopped
	c.status.ExitCode = code
	c.status.ExitedAt = time.Now()
	c.status.Pid = 0
	c.proc.code, c.proc.at = code, c.status.ExitedAt
	close(c.proc.exited)
}

// fail returns the error set by FailNext for op, once; f.mu must be held.
func (f *Runtime) fail(op string) error {
	err, ok := f.failNext[op]
	if !ok {
		return nil
	}
	delete(f.failNext, op)
	return err
}

// get returns container id; f.mu must be held.
func (f *Runtime) get(id string) (*fakeContainer, error) {
	c, ok := f.containers[id]
	if !ok {
		return nil, fmt.Errorf("fake runtime: container %s: %w", id, runtime.ErrNotFound)
	}
	return c, nil
}

// ImageExists reports whether AddImage or ImportImage added ref.
func (f *Runtime) ImageExists(ctx context.Context, ref string) (bool, error) {
	name, err := imageref.Normalize(ref)
	if err != nil {
		return false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("ImageExists"); err != nil {
		return false, err
	}
	_, ok := f.images[name]
	return ok, nil
}

// ListImages returns the fake's images sorted by name.
func (f *Runtime) ListImages(ctx context.Context) ([]runtime.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("ListImages"); err != nil {
		return nil, err
	}
	out := slices.Collect(maps.Values(f.images))
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ImportImage reads a tar and adds one image per name in its index.json
// (io.containerd.image.name annotations) or manifest.json (RepoTags),
// without checking the content.
func (f *Runtime) ImportImage(ctx context.Context, r io.Reader) ([]runtime.Image, error) {
	f.mu.Lock()
	err := f.fail("ImportImage")
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	names, err := archiveImageNames(tar.NewReader(r))
	if err != nil {
		return nil, fmt.Errorf("fake runtime: import image: %w", err)
	}
	var out []runtime.Image
	for _, n := range names {
		if err := f.AddImage(n); err != nil {
			return nil, err
		}
		name, _ := imageref.Normalize(n)
		f.mu.Lock()
		out = append(out, f.images[name])
		f.mu.Unlock()
	}
	return out, nil
}

// Create records container spec.ID, not running.
func (f *Runtime) Create(ctx context.Context, spec runtime.ContainerSpec) error {
	if spec.ID == "" {
		return errors.New("fake runtime: create container: empty id")
	}
	name, err := imageref.Normalize(spec.Image)
	if err != nil {
		return err
	}
	if spec.StopSignal != "" {
		if _, err := runtime.ParseSignal(spec.StopSignal); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("Create"); err != nil {
		return err
	}
	if _, ok := f.containers[spec.ID]; ok {
		return fmt.Errorf("fake runtime: create container %s: %w", spec.ID, runtime.ErrExists)
	}
	if _, ok := f.images[name]; !ok {
		return fmt.Errorf("fake runtime: image %s is not on this node; load it with `berth image import`: %w", name, runtime.ErrImageNotFound)
	}
	f.nextIP++
	st := runtime.Status{
		ID:      spec.ID,
		State:   runtime.StateCreated,
		Image:   name,
		Address: fmt.Sprintf("127.88.%d.%d", f.nextIP/250%250, f.nextIP%250+1),
		Ports:   slices.Clone(spec.Ports),
		Labels:  maps.Clone(spec.Labels),
	}
	f.containers[spec.ID] = &fakeContainer{spec: spec, status: st, logged: make(chan struct{})}
	return nil
}

// Start marks container id running with a new pid; a stopped container
// runs again. With Options it takes StartLatency, and fails or
// crashes later as FailureRate and CrashAfter say.
func (f *Runtime) Start(ctx context.Context, id string) (runtime.Status, error) {
	if err := f.simulateStart(ctx); err != nil {
		return runtime.Status{}, fmt.Errorf("fake runtime: start container %s: %w", id, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("Start"); err != nil {
		return runtime.Status{}, err
	}
	c, err := f.get(id)
	if err != nil {
		return runtime.Status{}, err
	}
	if c.status.State == runtime.StateRunning {
		return c.snapshot(), nil
	}
	crash := f.failStart()
	if crash && f.sim.CrashAfter <= 0 {
		return runtime.Status{}, fmt.Errorf("fake runtime: container %s exited with code 1 as it started (a simulated failure)", id)
	}
	if c.status.State == runtime.StateStopped {
		c.status.ExitCode, c.status.ExitedAt, c.status.OOMKilled = 0, time.Time{}, false
	}
	c.proc = &fakeProc{exited: make(chan struct{})}
	c.released = false
	f.nextPid++
	c.status.State = runtime.StateRunning
	c.status.Pid = f.nextPid
	if crash {
		f.crashLater(c)
	}
	return c.snapshot(), nil
}

// snapshot returns a copy of the status that callers may keep; f.mu must
// be held.
func (c *fakeContainer) snapshot() runtime.Status {
	st := c.status
	st.Ports = slices.Clone(st.Ports)
	st.Labels = maps.Clone(st.Labels)
	return st
}

// Wait returns a channel that receives the exit of container id's process.
func (f *Runtime) Wait(ctx context.Context, id string) (<-chan runtime.Exit, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("Wait"); err != nil {
		return nil, err
	}
	c, err := f.get(id)
	if err != nil {
		return nil, err
	}
	if c.status.State == runtime.StateCreated {
		return nil, fmt.Errorf("fake runtime: container %s has not been started: %w", id, runtime.ErrNotFound)
	}
	out := make(chan runtime.Exit, 1)
	proc := c.proc
	go func() {
		select {
		case <-proc.exited:
			out <- runtime.Exit{Code: proc.code, At: proc.at, OOMKilled: proc.oomKilled}
		case <-ctx.Done():
			out <- runtime.Exit{Code: -1, Err: ctx.Err()}
		}
	}()
	return out, nil
}

// Stop ends container id's process as a real one would: at once with code
// 128+signal, or with 137 after grace when it ignores the signal.
func (f *Runtime) Stop(ctx context.Context, id string, signal string, grace time.Duration) error {
	f.mu.Lock()
	if err := f.fail("Stop"); err != nil {
		f.mu.Unlock()
		return err
	}
	c, err := f.get(id)
	if err != nil {
		f.mu.Unlock()
		return err
	}
	if signal == "" {
		signal = c.spec.StopSignal
	}
	sig := syscall.SIGTERM
	if signal != "" {
		if sig, err = runtime.ParseSignal(signal); err != nil {
			f.mu.Unlock()
			return err
		}
	}
	if c.status.State != runtime.StateRunning {
		f.mu.Unlock()
		return nil
	}
	if !c.ignoreSig || sig == syscall.SIGKILL {
		c.exit(128 + int32(sig))
		f.mu.Unlock()
		return nil
	}
	proc := c.proc
	f.mu.Unlock()

	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-proc.exited: // Exit was called meanwhile
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.status.State == runtime.StateRunning && c.proc == proc {
		c.exit(128 + int32(syscall.SIGKILL))
	}
	return nil
}

// Remove forgets container id; nil if it does not exist.
func (f *Runtime) Remove(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("Remove"); err != nil {
		return err
	}
	c, ok := f.containers[id]
	if !ok {
		return nil
	}
	if c.status.State == runtime.StateRunning {
		c.exit(128 + int32(syscall.SIGKILL))
	}
	delete(f.containers, id)
	return nil
}

// Release notes that container id's network was released (see
// Released); nil if it does not exist.
func (f *Runtime) Release(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("Release"); err != nil {
		return err
	}
	if c, ok := f.containers[id]; ok {
		c.released = true
	}
	return nil
}

// Released reports whether container id exists and was released.
func (f *Runtime) Released(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	return ok && c.released
}

// Inspect returns container id's status.
func (f *Runtime) Inspect(ctx context.Context, id string) (runtime.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("Inspect"); err != nil {
		return runtime.Status{}, err
	}
	c, err := f.get(id)
	if err != nil {
		return runtime.Status{}, err
	}
	return c.snapshot(), nil
}

// List returns every container's status, sorted by id.
func (f *Runtime) List(ctx context.Context) ([]runtime.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("List"); err != nil {
		return nil, err
	}
	out := make([]runtime.Status, 0, len(f.containers))
	for _, c := range f.containers {
		out = append(out, c.snapshot())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Logs calls fn with the lines WriteLog added to container id; with
// opts.Follow it waits for more until the container exits or ctx ends.
func (f *Runtime) Logs(ctx context.Context, id string, opts runtime.LogOptions, fn func(runtime.LogLine) error) error {
	f.mu.Lock()
	if err := f.fail("Logs"); err != nil {
		f.mu.Unlock()
		return err
	}
	c, err := f.get(id)
	if err != nil {
		f.mu.Unlock()
		return err
	}
	// Lines are in time order: the first one at or after Since is where
	// the selection starts.
	start := 0
	for start < len(c.logs) && c.logs[start].At.Before(opts.Since) {
		start++
	}
	// ... and the first one after Until where it ends.
	end := start
	for end < len(c.logs) && (opts.Until.IsZero() || !c.logs[end].At.After(opts.Until)) {
		end++
	}
	next := start
	if opts.Tail >= 0 && int64(end-start) > opts.Tail {
		next = end - int(opts.Tail)
	}
	for {
		lines := slices.Clone(c.logs[next:])
		next = len(c.logs)
		logged, proc, running := c.logged, c.proc, c.status.State == runtime.StateRunning
		f.mu.Unlock()

		for _, l := range lines {
			if !opts.Until.IsZero() && l.At.After(opts.Until) {
				return nil
			}
			if err := fn(l); err != nil {
				return err
			}
		}
		if !opts.Follow || !running {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-logged:
		case <-proc.exited:
		}
		f.mu.Lock()
	}
}

// archiveImageNames returns the image names an image archive declares:
// the io.containerd.image.name annotations (or full-reference ref.name
// annotations) of an OCI layout's index.json, or the RepoTags of a
// docker-archive's manifest.json.
func archiveImageNames(tr *tar.Reader) ([]string, error) {
	var names []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		switch hdr.Name {
		case "index.json":
			var index struct {
				Manifests []struct {
					Annotations map[string]string `json:"annotations"`
				} `json:"manifests"`
			}
			if err := json.NewDecoder(tr).Decode(&index); err != nil {
				return nil, fmt.Errorf("index.json: %w", err)
			}
			for _, m := range index.Manifests {
				if n := m.Annotations["io.containerd.image.name"]; n != "" {
					names = append(names, n)
				} else if n := runtime.ImportedImageName(m.Annotations["org.opencontainers.image.ref.name"]); n != "" {
					names = append(names, n)
				}
			}
		case "manifest.json":
			var manifest []struct {
				RepoTags []string `json:"RepoTags"`
			}
			if err := json.NewDecoder(tr).Decode(&manifest); err != nil {
				return nil, fmt.Errorf("manifest.json: %w", err)
			}
			for _, m := range manifest {
				names = append(names, m.RepoTags...)
			}
		}
	}
	if len(names) == 0 {
		return nil, errors.New("the archive names no image (want an OCI layout or docker-archive tar)")
	}
	return names, nil
}
