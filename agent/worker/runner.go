package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berthproject/berth/agent/runtime"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"google.golang.org/protobuf/proto"
)

// runner drives one task's container.
type runner struct {
	w  *Worker
	id string

	changed chan struct{}
	// guarded by w.mu
	task    *berthv1.Task
	removed bool

	// owned by the run goroutine
	observed berthv1.TaskState
	exits    <-chan runtime.Exit
	// health receives the health monitor's reports; cancelHealth stops it.
	health       chan healthReport
	cancelHealth context.CancelFunc
	status       *berthv1.TaskStatus
	// preparing is when this runner moved the task to preparing, for the
	// start time metric.
	preparing time.Time
	// released says the ended container's network was released.
	released bool
}

func newRunner(w *Worker, t *berthv1.Task) *runner {
	r := &runner{w: w, id: t.GetMeta().GetId(), task: t, changed: make(chan struct{}, 1), health: make(chan healthReport)}
	// What the control plane last heard is where this runner starts: a
	// task it believes running but whose container is gone must fail, not
	// silently start again.
	r.observed = t.GetStatus().GetState()
	r.status = proto.Clone(t.GetStatus()).(*berthv1.TaskStatus)
	if r.status == nil || r.status.State == berthv1.TaskState_TASK_STATE_UNSPECIFIED {
		r.status = &berthv1.TaskStatus{}
	}
	return r
}

func (r *runner) adopt(c runtime.Status) {
	st := observedStatus(c)
	r.observed, r.status = st.State, st
}

func (r *runner) signal() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *runner) update(t *berthv1.Task) {
	r.task = t // w.mu held by the caller
	r.signal()
}

func (r *runner) remove() {
	r.removed = true // w.mu held by the caller
	r.signal()
}

func (r *runner) snapshot() (*berthv1.Task, bool) {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	return r.task, r.removed
}

func (r *runner) isRemoved() bool {
	_, removed := r.snapshot()
	return removed
}

// set moves the observed state forward and reports it.
func (r *runner) set(state berthv1.TaskState, mutate func(*berthv1.TaskStatus)) {
	if state < r.observed {
		return
	}
	st := proto.Clone(r.status).(*berthv1.TaskStatus)
	st.State = state
	st.Timestamp = nil
	st.Message = ""
	if mutate != nil {
		mutate(st)
	}
	r.observed, r.status = state, st
	r.w.setStatus(r.id, st)
}

func (r *runner) fail(state berthv1.TaskState, err error) {
	r.w.log.Warn("task failed", "task", r.id, "state", taskstate.Name(state), "err", err)
	r.set(state, func(st *berthv1.TaskStatus) { st.Err = err.Error() })
}

// run loops until the task is removed or ctx ends.
func (r *runner) run(ctx context.Context) {
	if r.observed == berthv1.TaskState_TASK_STATE_RUNNING && r.exits == nil && !r.isRemoved() {
		r.watchExisting(ctx)
	}
	defer r.stopHealth()
	for {
		// Once the worker stops, its containers are left running for the
		// next agent to adopt: no step may fail them on a cancelled
		// context, and an exit seen now is the wait ending, not the
		// container (select picks at random when both are ready).
		if ctx.Err() != nil {
			return
		}
		task, removed := r.snapshot()
		if removed {
			r.cleanup(ctx, task)
			return
		}
		r.step(ctx, task)
		r.releaseEnded(ctx)
		select {
		case <-ctx.Done():
			return
		case <-r.changed:
		case ex := <-r.exits:
			r.exits = nil
			if ctx.Err() != nil {
				return
			}
			r.stopHealth()
			r.exited(ex)
		case hr := <-r.health:
			r.healthChanged(ctx, task, hr)
		}
	}
}

// step makes the moves from the observed state toward the desired one
// that need no waiting.
func (r *runner) step(ctx context.Context, task *berthv1.Task) {
	if taskstate.Terminal(r.observed) {
		return
	}
	if given := task.GetStatus().GetState(); taskstate.Terminal(given) {
		r.givenUp(ctx, task, given)
		return
	}
	if task.DesiredState != berthv1.TaskState_TASK_STATE_RUNNING {
		r.stop(ctx, task)
		return
	}
	if r.observed == berthv1.TaskState_TASK_STATE_RUNNING {
		return
	}
	r.start(ctx, task)
}

func (r *runner) start(ctx context.Context, task *berthv1.Task) {
	spec := task.GetSpec()
	if r.observed < berthv1.TaskState_TASK_STATE_ACCEPTED {
		r.set(berthv1.TaskState_TASK_STATE_ACCEPTED, nil)
	}
	if r.observed < berthv1.TaskState_TASK_STATE_PREPARING {
		r.preparing = time.Now()
		r.set(berthv1.TaskState_TASK_STATE_PREPARING, nil)
	}
	if r.observed < berthv1.TaskState_TASK_STATE_STARTING {
		if err := r.ensureImage(ctx, spec); err != nil {
			if ctx.Err() != nil || r.leaving() {
				err = cutShort(err)
			}
			r.handle(opImage, err, "")
			return
		}
		// Verified after the pull: the signature is of the digest the
		// task pins, which the pull fetched.
		if err := r.verifyImage(ctx, task); err != nil {
			if ctx.Err() != nil || r.leaving() {
				err = cutShort(err)
			}
			r.handle(opImage, err, "")
			return
		}
	}
	cs, ok := r.createAndStart(ctx, task)
	if !ok {
		return
	}
	// Wait reports an exit that happened before it was called, so a
	// container that dies at once is still seen.
	exits, err := r.w.rt.Wait(ctx, r.id)
	if !r.handle(opWait, err, "watching the container") {
		return
	}
	r.exits = exits
	r.observeStart()
	hc, checked := r.healthConfig(ctx, spec)
	r.set(berthv1.TaskState_TASK_STATE_RUNNING, func(st *berthv1.TaskStatus) {
		st.Pid, st.Address, st.Ports = int32(cs.Pid), cs.Address, portBindings(cs.Ports)
		if checked {
			// Starting from the first report: a task with a check takes
			// no traffic (names, virtual IPs) before it passes.
			st.Health = berthv1.Health_HEALTH_STARTING
		}
	})
	if checked {
		r.startHealth(ctx, hc, cs.Address)
	}
}

// createAndStart creates the task's container (unless that was done) and
// starts it, holding one of the node's start slots; ok is false when the
// task failed, or is leaving or the worker stops while it waited.
func (r *runner) createAndStart(ctx context.Context, task *berthv1.Task) (runtime.Status, bool) {
	release, ok := r.takeSlot(ctx, r.w.starts, "start")
	if !ok {
		return runtime.Status{}, false
	}
	defer release()
	defer r.w.markBusy(r.id)()
	if r.observed < berthv1.TaskState_TASK_STATE_STARTING {
		cs, err := r.w.containerSpec(r.id, task)
		if err == nil {
			err = r.w.rt.Create(ctx, cs)
		}
		if !r.handle(opCreate, err, "") {
			r.removeContainer(ctx)
			return runtime.Status{}, false
		}
		r.set(berthv1.TaskState_TASK_STATE_STARTING, func(st *berthv1.TaskStatus) { st.ContainerId = r.id })
	}
	cs, err := r.w.rt.Start(ctx, r.id)
	if !r.handle(opStart, err, "starting the container") {
		return runtime.Status{}, false
	}
	return cs, true
}

// takeSlot waits for one of s's slots, the wait shown in the task's status
// message; ok is false when the wait ended because the task is leaving or
// the worker stops. The caller must call release once done.
func (r *runner) takeSlot(ctx context.Context, s *slots, what string) (release func(), ok bool) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := r.cancelWhenLeaving(sctx, cancel)
	release, err := s.acquire(sctx, func(ahead int) {
		r.set(r.observed, func(st *berthv1.TaskStatus) {
			st.Message = fmt.Sprintf("waiting for a %s slot (%d ahead)", what, ahead)
		})
	})
	stop()
	return release, err == nil
}

// watchExisting follows the container of a task the control plane already
// saw running (the agent restarted, or the task was adopted).
func (r *runner) watchExisting(ctx context.Context) {
	c, err := r.w.rt.Inspect(ctx, r.id)
	if err != nil || c.State != runtime.StateRunning {
		if err == nil && c.State == runtime.StateStopped {
			r.exited(runtime.Exit{Code: c.ExitCode, At: c.ExitedAt, OOMKilled: c.OOMKilled})
			return
		}
		r.fail(berthv1.TaskState_TASK_STATE_FAILED, errors.New("the container is gone (the node restarted or it was removed by hand)"))
		return
	}
	exits, err := r.w.rt.Wait(ctx, r.id)
	if !r.handle(opWait, err, "watching the container") {
		return
	}
	r.exits = exits
	task, _ := r.snapshot()
	if hc, checked := r.healthConfig(ctx, task.GetSpec()); checked {
		r.startHealth(ctx, hc, c.Address)
	}
}

func (r *runner) exited(ex runtime.Exit) {
	if taskstate.Terminal(r.observed) {
		return
	}
	task, _ := r.snapshot()
	if task.DesiredState != berthv1.TaskState_TASK_STATE_RUNNING {
		r.set(berthv1.TaskState_TASK_STATE_SHUTDOWN, func(st *berthv1.TaskStatus) { st.ExitCode = ex.Code })
		return
	}
	if !r.handle(opWait, ex.Err, "lost track of the container") {
		return
	}
	// An OOM kill fails the task like any other non-zero exit, so the
	// restart policy treats it the same; only the error and the flag
	// tell users why.
	state, msg := exitState(ex.Code, ex.OOMKilled, task.GetSpec().GetLimits().GetMemoryBytes())
	if ex.OOMKilled {
		r.w.log.Warn("container killed for lack of memory", "task", r.id, "exit_code", ex.Code, "memory_limit", task.GetSpec().GetLimits().GetMemoryBytes())
	}
	r.set(state, func(st *berthv1.TaskStatus) {
		st.ExitCode, st.Err, st.OomKilled = ex.Code, msg, ex.OOMKilled && ex.Code != 0
	})
}

// stop stops the container of a task no longer desired to run.
func (r *runner) stop(ctx context.Context, task *berthv1.Task) {
	r.stopHealth()
	if r.observed >= berthv1.TaskState_TASK_STATE_STARTING {
		if err := r.stopContainer(ctx, task, 0); err != nil {
			r.handle(opStop, err, "stopping the container")
			return
		}
	}
	var code int32
	if c, err := r.w.rt.Inspect(ctx, r.id); err == nil {
		code = c.ExitCode
	}
	r.exits = nil
	r.set(berthv1.TaskState_TASK_STATE_SHUTDOWN, func(st *berthv1.TaskStatus) { st.ExitCode = code })
}

// releaseEnded frees the network of a task that reached its end: an
// exited container keeps its record (ps -a, logs) but no namespace or
// links. Done once per runner, in the background, since the network may
// not be set up yet (an agent that just restarted) and the runner must
// stay free to act on the task's removal; Release and Remove are both
// idempotent. A failure is only logged: the node's sweep and the task's
// removal try again.
func (r *runner) releaseEnded(ctx context.Context) {
	if r.released || !taskstate.Terminal(r.observed) {
		return
	}
	r.released = true
	r.w.wg.Add(1)
	go func() {
		defer r.w.wg.Done()
		if err := r.w.rt.Release(ctx, r.id); err != nil && ctx.Err() == nil {
			r.w.log.Warn("releasing an ended container's network", "task", r.id, "err", err)
		}
	}()
}

// cleanup stops and removes the container of a task the control plane
// forgot.
func (r *runner) cleanup(ctx context.Context, task *berthv1.Task) {
	defer r.w.markBusy(r.id)()
	if err := r.stopContainer(ctx, task, removedTaskGrace); err != nil {
		r.w.log.Warn("stopping a removed task's container", "task", r.id, "err", err)
	}
	r.removeContainer(ctx)
}

// removedTaskGrace is the stop grace period of a removed task whose spec
// sets none.
const removedTaskGrace = 10 * time.Second

// stopContainer stops the task's container with the task's stop signal,
// then SIGKILL after its stop grace period, or after defaultGrace when the
// spec sets none. A container already gone is stopped: nil.
func (r *runner) stopContainer(ctx context.Context, task *berthv1.Task, defaultGrace time.Duration) error {
	spec := task.GetSpec()
	grace := spec.GetStopGracePeriod().AsDuration()
	if grace == 0 {
		grace = defaultGrace
	}
	err := r.w.rt.Stop(ctx, r.id, spec.GetStopSignal(), grace)
	if classify(opStop, err) == verdictDone {
		return nil
	}
	return err
}

// removeContainer removes the task's container; a failure is only logged,
// as nothing waits on it.
func (r *runner) removeContainer(ctx context.Context) {
	if err := r.w.rt.Remove(ctx, r.id); classify(opRemove, err) != verdictDone {
		r.w.log.Warn("removing a container", "task", r.id, "err", err)
	}
}

// containerSpec is the runtime's view of a task.
func containerSpec(id string, task *berthv1.Task) runtime.ContainerSpec {
	spec := task.GetSpec()
	cs := runtime.ContainerSpec{
		ID:          id,
		Image:       spec.GetImage(),
		Command:     spec.GetCommand(),
		Entrypoint:  spec.GetEntrypoint(),
		Env:         spec.GetEnv(),
		WorkingDir:  spec.GetWorkingDir(),
		User:        spec.GetUser(),
		Labels:      spec.GetLabels(),
		MilliCPUs:   spec.GetLimits().GetMilliCpus(),
		MemoryBytes: spec.GetLimits().GetMemoryBytes(),
		StopSignal:  spec.GetStopSignal(),
		Hostname:    spec.GetHostname(),
		DNS: runtime.DNSConfig{
			Servers: spec.GetDns(),
			Options: spec.GetDnsOptions(),
		},
		Log: runtime.LogLimits{MaxSize: spec.GetLogging().GetMaxSize(), MaxFiles: int(spec.GetLogging().GetMaxFile())},
	}
	if app := task.GetApp(); app != "" {
		cs.DNS.Search = append(cs.DNS.Search, app)
	}
	cs.DNS.Search = append(cs.DNS.Search, spec.GetDnsSearch()...)
	for _, h := range spec.GetExtraHosts() {
		cs.DNS.ExtraHosts = append(cs.DNS.ExtraHosts, runtime.HostEntry{Hostname: h.GetHostname(), Address: h.GetAddress()})
	}
	for _, n := range task.GetNetworks() {
		cs.Networks = append(cs.Networks, runtime.NetworkInterface{
			NetworkID: n.GetNetworkId(), Network: n.GetNetwork(), Address: n.GetAddress(), Internal: n.GetInternal(),
		})
	}
	ranged := task.GetHostPorts()
	for _, p := range spec.GetPorts() {
		published := p.Published
		if p.GetPublishedEnd() > 0 {
			// A range of host ports: the task was given one of it.
			if len(ranged) == 0 {
				continue
			}
			published, ranged = ranged[0].GetPublished(), ranged[1:]
		} else if p.Published == 0 || p.GetMode() != berthv1.PublishMode_PUBLISH_MODE_HOST {
			// Ingress ports answer on every node through the node
			// network's rules; only host-mode ports belong to this
			// container.
			continue
		}
		cs.Ports = append(cs.Ports, runtime.Port{Target: p.Target, Published: published, Protocol: p.Protocol, HostIP: p.HostIp})
	}
	return cs
}

// givenUp stops the container of a task the control plane gave up while
// this node was out of contact (it ran the task elsewhere meanwhile).
// Nothing is reported: the task's end is already decided.
func (r *runner) givenUp(ctx context.Context, task *berthv1.Task, state berthv1.TaskState) {
	r.stopHealth()
	if r.observed >= berthv1.TaskState_TASK_STATE_STARTING {
		r.w.log.Info("stopping a task that runs elsewhere now", "task", r.id, "state", taskstate.Name(state))
		if err := r.stopContainer(ctx, task, 0); err != nil {
			r.w.log.Warn("stopping a task given up", "task", r.id, "err", err)
		}
	}
	r.exits = nil
	r.observed = state
}
