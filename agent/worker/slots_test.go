package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/berthproject/berth/agent/image"
	"github.com/berthproject/berth/agent/runtime"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/internal/metrics/metricstest"
)

// concurrency counts the calls in progress and remembers the most seen at
// once.
type concurrency struct {
	mu        sync.Mutex
	now, peak int
}

func (c *concurrency) enter() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now++
	c.peak = max(c.peak, c.now)
}

func (c *concurrency) leave() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now--
}

func (c *concurrency) inside() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *concurrency) max() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peak
}

// gatedRuntime is the recording runtime whose Create..Start span is
// counted, and whose Start waits for the gate when one is set.
type gatedRuntime struct {
	*recordingRuntime
	starts concurrency
	gate   chan struct{} // nil: Start does not wait
}

func (g *gatedRuntime) Create(ctx context.Context, spec runtime.ContainerSpec) error {
	g.starts.enter()
	return g.recordingRuntime.Create(ctx, spec)
}

func (g *gatedRuntime) Start(ctx context.Context, id string) (runtime.Status, error) {
	defer g.starts.leave()
	if g.gate != nil {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return runtime.Status{}, ctx.Err()
		}
	}
	return g.recordingRuntime.Start(ctx, id)
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Many tasks assigned at once never have more than the limit of containers
// between create and start, and all of them run in the end.
func TestStartsAreBounded(t *testing.T) {
	for _, limit := range []int{1, 3} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			rt := &gatedRuntime{recordingRuntime: newRecordingRuntime(), gate: make(chan struct{})}
			h := newHarnessOn(t, rt.recordingRuntime, rt)
			h.w.SetLimits(limit, 0)
			const n = 12
			var tasks []*berthv1.Task
			for i := range n {
				tasks = append(tasks, newTask(fmt.Sprintf("t%d", i)))
			}
			h.w.Assign(&berthv1.Assignments{Tasks: tasks})
			// The first ones take every slot; the rest wait.
			waitFor(t, "the slots to fill", func() bool { return rt.starts.inside() == limit })
			waitFor(t, "the rest to queue", func() bool {
				_, waiting := h.w.starts.load()
				return waiting == n-limit
			})
			close(rt.gate)
			for _, tk := range tasks {
				id := tk.GetMeta().GetId()
				for st := h.next(id); st.State != running; st = h.next(id) {
					if st.State > running {
						t.Fatalf("task %s reported %v: %s", id, st.State, st.Err)
					}
				}
			}
			if peak := rt.starts.max(); peak > limit {
				t.Fatalf("%d containers were being started at once, limit %d", peak, limit)
			}
			if held, waiting := h.w.starts.load(); held != 0 || waiting != 0 {
				t.Fatalf("after all started: %d slots held, %d waiting, want none", held, waiting)
			}
		})
	}
}

// A task waiting for a start slot says so; removed while it waits, it
// leaves the line without taking a slot, and the next task still starts.
func TestWaitingForAStartSlot(t *testing.T) {
	rt := &gatedRuntime{recordingRuntime: newRecordingRuntime(), gate: make(chan struct{})}
	h := newHarnessOn(t, rt.recordingRuntime, rt)
	h.w.SetLimits(1, 0)
	h.w.Assign(&berthv1.Assignments{Tasks: []*berthv1.Task{newTask("a")}})
	h.expect("a", accepted, preparing)
	waitFor(t, "a to hold the slot", func() bool { return rt.starts.inside() == 1 })

	h.w.Assign(&berthv1.Assignments{Tasks: []*berthv1.Task{newTask("b")}})
	h.expect("b", accepted, preparing)
	if st := h.next("b"); st.State != preparing || st.Message != "waiting for a start slot (0 ahead)" {
		t.Fatalf("b reported %v %q, want preparing, waiting for a start slot (0 ahead)", st.State, st.Message)
	}
	h.w.Assign(&berthv1.Assignments{Tasks: []*berthv1.Task{newTask("c")}})
	h.expect("c", accepted, preparing)
	if st := h.next("c"); st.Message != "waiting for a start slot (1 ahead)" {
		t.Fatalf("c reported %q, want waiting for a start slot (1 ahead)", st.Message)
	}
	got := metricstest.Values(t, h.w.Collectors()...)
	if v := got["berth_node_start_waiting"]; v != 2 {
		t.Errorf("berth_node_start_waiting = %v, want 2", v)
	}

	h.w.Assign(&berthv1.Assignments{Removed: []string{"b"}})
	rt.waitRemoved(t, "b")
	if _, waiting := h.w.starts.load(); waiting != 1 {
		t.Fatalf("%d tasks wait after b left, want 1 (c)", waiting)
	}
	close(rt.gate)
	h.expect("a", starting, running)
	st := h.next("c")
	for st.State != running {
		st = h.next("c")
	}
	if rt.createCount() != 2 {
		t.Fatalf("%d containers created, want 2 (a and c; b never got a slot)", rt.createCount())
	}
}

// Stopping the worker while tasks wait for slots ends every wait: nothing
// deadlocks and no goroutine is left (goleak checks the package).
func TestStoppingTheWorkerEndsSlotWaits(t *testing.T) {
	rt := &gatedRuntime{recordingRuntime: newRecordingRuntime(), gate: make(chan struct{})}
	h := newHarnessOn(t, rt.recordingRuntime, rt)
	h.w.SetLimits(1, 1)
	var tasks []*berthv1.Task
	for i := range 5 {
		tasks = append(tasks, newTask(fmt.Sprintf("t%d", i)))
	}
	h.w.Assign(&berthv1.Assignments{Tasks: tasks})
	waitFor(t, "the rest to queue", func() bool {
		_, waiting := h.w.starts.load()
		return waiting == 4
	})
	h.stop()
	if held, waiting := h.w.starts.load(); held != 0 || waiting != 0 {
		t.Fatalf("after stop: %d slots held, %d waiting, want none", held, waiting)
	}
}

// countingImages is an Images whose fetches are counted and wait for the
// gate, then add the image; an image present is not fetched.
type countingImages struct {
	rt      *recordingRuntime
	pulls   concurrency
	gate    chan struct{}
	mu      sync.Mutex
	present map[string]bool
}

func (c *countingImages) Present(ctx context.Context, img, dgst string) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.present[img], nil
}

func (c *countingImages) Ensure(ctx context.Context, img, dgst string, progress func(image.Progress)) (runtime.Image, error) {
	if ok, _ := c.Present(ctx, img, dgst); ok {
		return runtime.Image{Name: img}, nil
	}
	c.pulls.enter()
	defer c.pulls.leave()
	select {
	case <-c.gate:
	case <-ctx.Done():
		return runtime.Image{}, ctx.Err()
	}
	if err := c.rt.AddImage(img); err != nil {
		return runtime.Image{}, err
	}
	c.mu.Lock()
	c.present[img] = true
	c.mu.Unlock()
	return runtime.Image{Name: img}, nil
}

// Pulls are bounded apart from starts, and an image already on the node
// takes no pull slot.
func TestPullsAreBounded(t *testing.T) {
	rt := newRecordingRuntime()
	h := newHarness(t, rt)
	images := &countingImages{rt: rt, gate: make(chan struct{}), present: map[string]bool{"busybox": true}}
	h.w.SetImages(images)
	h.w.SetLimits(0, 2)
	var tasks []*berthv1.Task
	for i := range 6 {
		tk := newTask(fmt.Sprintf("p%d", i))
		tk.Spec.Image = fmt.Sprintf("registry.local/app%d:1", i)
		tasks = append(tasks, tk)
	}
	// Its image is here: it runs while the pulls wait.
	h.w.Assign(&berthv1.Assignments{Tasks: append(tasks, newTask("local"))})
	h.expect("local", accepted, preparing, starting, running)
	waitFor(t, "the pulls to queue", func() bool {
		held, waiting := h.w.pulls.load()
		return held == 2 && waiting == 4
	})
	close(images.gate)
	for _, tk := range tasks {
		id := tk.GetMeta().GetId()
		for st := h.next(id); st.State != running; st = h.next(id) {
			if st.State > running {
				t.Fatalf("task %s reported %v: %s", id, st.State, st.Err)
			}
		}
	}
	if peak := images.pulls.max(); peak > 2 {
		t.Fatalf("%d pulls at once, limit 2", peak)
	}
}

func TestSlots(t *testing.T) {
	ctx := context.Background()
	s := newSlots(2)
	r1, err := s.acquire(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := s.acquire(ctx, nil)

	// A third waits, told its place; cancelled, it leaves the line.
	cctx, cancel := context.WithCancel(ctx)
	places := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		_, err := s.acquire(cctx, func(ahead int) { places <- ahead })
		done <- err
	}()
	if got := <-places; got != 0 {
		t.Fatalf("first waiter has %d ahead, want 0", got)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait returned %v, want context.Canceled", err)
	}
	if held, waiting := s.load(); held != 2 || waiting != 0 {
		t.Fatalf("after the cancelled wait: %d held, %d waiting, want 2, 0", held, waiting)
	}

	// A waiter gets the slot a release hands on; releasing twice gives
	// back one slot only.
	got := make(chan func(), 1)
	go func() {
		r, _ := s.acquire(ctx, nil)
		got <- r
	}()
	waitFor(t, "the waiter to queue", func() bool { _, w := s.load(); return w == 1 })
	r1()
	r1()
	r3 := <-got
	if held, waiting := s.load(); held != 2 || waiting != 0 {
		t.Fatalf("after the hand-over: %d held, %d waiting, want 2, 0", held, waiting)
	}
	r2()
	r3()
	if held, _ := s.load(); held != 0 {
		t.Fatalf("after every release: %d held, want 0", held)
	}

	// No limit: never waits.
	var unbounded *slots
	for range 3 {
		if _, err := unbounded.acquire(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// A container that exits has its network released at once, while its
// record stays for ps -a and logs.
func TestEndedContainerIsReleased(t *testing.T) {
	h := newHarness(t, newRecordingRuntime())
	h.run(newTask("t1"))
	if h.rt.Released("t1") {
		t.Fatal("a running container was released")
	}
	if err := h.rt.Exit("t1", 2); err != nil {
		t.Fatal(err)
	}
	h.expect("t1", failed)
	waitFor(t, "t1's release", func() bool { return h.rt.Released("t1") })
	if state, err := h.containerState("t1"); err != nil || state != runtime.StateStopped {
		t.Fatalf("container is %v (%v), want kept, stopped", state, err)
	}
	if st := h.w.Statuses(); len(st) != 1 || st[0].Status.State != failed {
		t.Fatalf("Statuses() = %v, want t1 failed", st)
	}
}

// The sweep is told which tasks may still run, which ended, and which are
// being started right now.
func TestInventory(t *testing.T) {
	rt := &gatedRuntime{recordingRuntime: newRecordingRuntime(), gate: make(chan struct{})}
	h := newHarnessOn(t, rt.recordingRuntime, rt)
	h.w.Assign(&berthv1.Assignments{Tasks: []*berthv1.Task{newTask("ends")}})
	close(rt.gate)
	h.expect("ends", accepted, preparing, starting, running)
	if err := rt.Exit("ends", 0); err != nil {
		t.Fatal(err)
	}
	h.expect("ends", complete)

	rt.gate = make(chan struct{})
	h.w.Assign(&berthv1.Assignments{Tasks: []*berthv1.Task{newTask("starting")}})
	waitFor(t, "the start", func() bool { return rt.starts.inside() == 1 })
	tasks, inFlight := h.w.Inventory()
	if want := map[string]bool{"ends": false, "starting": true}; !maps.Equal(tasks, want) {
		t.Fatalf("Inventory tasks = %v, want %v", tasks, want)
	}
	if want := map[string]bool{"starting": true}; !maps.Equal(inFlight, want) {
		t.Fatalf("Inventory in flight = %v, want %v", inFlight, want)
	}
	close(rt.gate)
	h.expect("starting", accepted, preparing, starting, running)
	if _, inFlight := h.w.Inventory(); len(inFlight) != 0 {
		t.Fatalf("in flight after the start: %v", inFlight)
	}
}

func TestWorthReporting(t *testing.T) {
	tests := []struct {
		last, now int
		want      bool
	}{
		{100, 99, false},
		{100, 51, false},
		{100, 50, true},
		{100, 0, true},
		{1, 0, true},
		{0, 0, false},
		{3, 1, true},
		{3, 2, false},
		{10, -1, false}, // left the line
	}
	for _, tt := range tests {
		if got := worthReporting(tt.last, tt.now); got != tt.want {
			t.Errorf("worthReporting(%d, %d) = %v, want %v", tt.last, tt.now, got, tt.want)
		}
	}
}
