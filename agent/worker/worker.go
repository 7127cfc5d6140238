// Package worker runs the tasks assigned to this node. Each task has a
// runner: one goroutine that moves the container, one idempotent step at a
// time, from what is observed toward what is desired, and reports every
// state it reaches.
package worker

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"

	"github.com/berthproject/berth/agent/runtime"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Reporter receives every status change of a task.
type Reporter func(taskID string, status *berthv1.TaskStatus)

// Runtime is what the worker needs of the node's runtime: the task
// containers, whether a task's image is here and the health check it
// declares, and commands run in a container for health probes.
type Runtime interface {
	runtime.Containers
	ImageExists(ctx context.Context, ref string) (bool, error)
	ImageHealthcheck(ctx context.Context, ref string) (*berthv1.HealthCheck, error)
	Exec(ctx context.Context, id string, cmd []string) (runtime.ExecResult, error)
}

// Worker keeps one runner per assigned task.
type Worker struct {
	rt     Runtime
	report Reporter
	log    *slog.Logger

	mu       sync.Mutex
	images   Images
	verifier Verifier
	ctx      context.Context
	runners  map[string]*runner
	adopted  map[string]runtime.Status
	statuses map[string]*berthv1.TaskStatus
	wg       sync.WaitGroup
	metrics  workerMetrics
	// files gives the data of the tasks' secrets and configs; nodeName
	// names the volumes of global services (see storage.go).
	files    FileSource
	nodeName string
	// starts and pulls bound the containers being created and started
	// and the images being fetched at once; nil is no bound.
	starts, pulls *slots
	// busy are the tasks whose runner is creating or starting a
	// container, or removing one, right now: the sweep leaves their
	// containers and network alone (see Inventory).
	busy map[string]int
}

// New returns a worker driving rt; Start must be called before Assign.
func New(rt Runtime, report Reporter, log *slog.Logger) *Worker {
	return &Worker{
		rt:       rt,
		report:   report,
		log:      log,
		runners:  map[string]*runner{},
		adopted:  map[string]runtime.Status{},
		statuses: map[string]*berthv1.TaskStatus{},
		metrics:  newWorkerMetrics(),
		busy:     map[string]int{},
	}
}

// SetLimits bounds the container creates and starts (starts) and the image
// pulls (pulls) the worker runs at once; 0 or less is no bound. A task
// waiting for a slot stays in its state with a message saying how many
// are ahead. Call it before the first Assign.
func (w *Worker) SetLimits(starts, pulls int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.starts, w.pulls = newSlots(starts), newSlots(pulls)
}

// markBusy notes that the runner of task id is in a step the sweep must
// not race; the returned function ends it.
func (w *Worker) markBusy(id string) (done func()) {
	w.mu.Lock()
	w.busy[id]++
	w.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.busy[id]--; w.busy[id] <= 0 {
				delete(w.busy, id)
			}
		})
	}
}

// Start adopts the containers this node's runtime already holds (the agent
// restarted; the containers kept running) so their tasks go on instead of
// starting again. Runners live until ctx ends.
func (w *Worker) Start(ctx context.Context) error {
	containers, err := w.rt.List(ctx)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ctx = ctx
	for _, c := range containers {
		w.adopted[c.ID] = c
		w.statuses[c.ID] = observedStatus(c)
	}
	return nil
}

// observedStatus is what an adopted container says of its task.
func observedStatus(c runtime.Status) *berthv1.TaskStatus {
	st := &berthv1.TaskStatus{ContainerId: c.ID, Address: c.Address, Pid: int32(c.Pid), Ports: portBindings(c.Ports), Timestamp: timestamppb.Now()}
	switch c.State {
	case runtime.StateRunning:
		st.State = berthv1.TaskState_TASK_STATE_RUNNING
	case runtime.StateStopped:
		st.ExitCode, st.OomKilled = c.ExitCode, c.OOMKilled
		// The container keeps no record of its limit; the error says so
		// without it.
		st.State, st.Err = exitState(c.ExitCode, c.OOMKilled, 0)
		if !c.ExitedAt.IsZero() {
			st.Timestamp = timestamppb.New(c.ExitedAt)
		}
	default:
		st.State = berthv1.TaskState_TASK_STATE_PREPARING
	}
	return st
}

// Statuses returns the last status of every task the worker knows, for the
// hello that opens each session.
func (w *Worker) Statuses() []*berthv1.TaskStatusReport {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*berthv1.TaskStatusReport, 0, len(w.statuses))
	for id, st := range w.statuses {
		out = append(out, &berthv1.TaskStatusReport{TaskId: id, Status: proto.Clone(st).(*berthv1.TaskStatus)})
	}
	return out
}

// Assign applies assignments from the control plane: a full set replaces
// everything (containers of tasks not in it are removed); otherwise tasks
// are added or updated and the removed ones forgotten.
func (w *Worker) Assign(a *berthv1.Assignments) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ctx == nil {
		return
	}
	if a.Full {
		keep := map[string]bool{}
		for _, t := range a.Tasks {
			keep[t.GetMeta().GetId()] = true
		}
		for id, r := range w.runners {
			if !keep[id] {
				r.remove()
				delete(w.runners, id)
			}
		}
		for id := range w.adopted {
			if !keep[id] {
				w.startRunner(&berthv1.Task{Meta: &berthv1.Meta{Id: id}}).remove()
			}
		}
	}
	for _, t := range a.Tasks {
		id := t.GetMeta().GetId()
		if r := w.runners[id]; r != nil {
			r.update(t)
			continue
		}
		w.runners[id] = w.startRunner(t)
	}
	for _, id := range a.Removed {
		if r := w.runners[id]; r != nil {
			r.remove()
			delete(w.runners, id)
		}
	}
}

// startRunner starts the runner of t; w.mu is held.
func (w *Worker) startRunner(t *berthv1.Task) *runner {
	id := t.GetMeta().GetId()
	r := newRunner(w, t)
	if c, ok := w.adopted[id]; ok {
		r.adopt(c)
		delete(w.adopted, id)
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		r.run(w.ctx)
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.runners[id] == r {
			delete(w.runners, id)
		}
		if r.removed {
			delete(w.statuses, id)
		}
	}()
	return r
}

// Tasks returns the tasks the worker runs, by id. Like the tasks of
// assignments, they are shared: read them, never change them.
func (w *Worker) Tasks() map[string]*berthv1.Task {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]*berthv1.Task, len(w.runners))
	for id, r := range w.runners {
		out[id] = r.task
	}
	return out
}

// Inventory tells the node's sweep what the worker knows: tasks maps each
// task it has a runner, a status or an adopted container for to whether
// that container may still run (its task has not ended); inFlight are the
// tasks whose containers are being created, started or removed right now.
func (w *Worker) Inventory() (tasks, inFlight map[string]bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	tasks = make(map[string]bool, len(w.statuses)+len(w.runners)+len(w.adopted))
	for id, st := range w.statuses {
		tasks[id] = !taskstate.Terminal(st.GetState())
	}
	for id := range w.runners {
		if _, ok := tasks[id]; !ok {
			tasks[id] = true
		}
	}
	for id, c := range w.adopted {
		if _, ok := tasks[id]; !ok {
			tasks[id] = c.State != runtime.StateStopped
		}
	}
	inFlight = make(map[string]bool, len(w.busy))
	for id := range w.busy {
		inFlight[id] = true
	}
	return tasks, inFlight
}

// Wait blocks until every runner has returned (after the Start context
// ended).
func (w *Worker) Wait() { w.wg.Wait() }

// setStatus records and reports a status change.
func (w *Worker) setStatus(id string, st *berthv1.TaskStatus) {
	if st.Timestamp == nil {
		st.Timestamp = timestamppb.Now()
	}
	w.mu.Lock()
	w.statuses[id] = st
	w.mu.Unlock()
	w.report(id, proto.Clone(st).(*berthv1.TaskStatus))
}

// exitState is the state and error of a task whose container exited with
// code; oomKilled says the kernel killed it for memory, memoryLimit is
// the task's limit in bytes (0 when it has none or it is not known).
func exitState(code int32, oomKilled bool, memoryLimit int64) (berthv1.TaskState, string) {
	switch {
	case code == 0:
		return berthv1.TaskState_TASK_STATE_COMPLETE, ""
	case oomKilled && memoryLimit > 0:
		return berthv1.TaskState_TASK_STATE_FAILED, fmt.Sprintf("out of memory: killed at the %s limit (exit code %d)", byteSize(memoryLimit), code)
	case oomKilled:
		return berthv1.TaskState_TASK_STATE_FAILED, fmt.Sprintf("out of memory: killed by the kernel (exit code %d)", code)
	default:
		return berthv1.TaskState_TASK_STATE_FAILED, "task: non-zero exit (" + strconv.Itoa(int(code)) + ")"
	}
}

// byteSize writes a size in bytes as users write limits: "64 MiB",
// "1.5 GiB", "512 bytes".
func byteSize(n int64) string {
	units := []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
	for _, u := range units {
		if n >= u.size {
			return strconv.FormatFloat(math.Round(float64(n)/float64(u.size)*10)/10, 'f', -1, 64) + " " + u.name
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

func portBindings(ports []runtime.Port) []*berthv1.PortBinding {
	out := make([]*berthv1.PortBinding, 0, len(ports))
	for _, p := range ports {
		out = append(out, &berthv1.PortBinding{Target: p.Target, Published: p.Published, Protocol: p.Protocol, HostIp: p.HostIP})
	}
	return out
}
