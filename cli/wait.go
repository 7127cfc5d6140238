package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
)

// How often the commands that wait (apply --wait, rollout status -w,
// rebalance --wait) read the cluster. They read when the Watch stream
// reports a change to the app, and at least every watchPollInterval for
// what the stream does not carry (the events that say a restart was given
// up, changes made while the stream was starting). Against a server that
// cannot watch they read every pollInterval. readGap lets a burst of
// changes (a rollout reports many tasks at once) settle into one read.
const (
	pollInterval      = 250 * time.Millisecond
	watchPollInterval = time.Second
	readGap           = 100 * time.Millisecond
)

// actionRestartGivenUp is the event action the orchestrator records when a
// slot's restart policy gives up on it (see the store's event vocabulary).
const actionRestartGivenUp = "restart-given-up"

// givenUpEventLimit bounds the events a read asks for to find given-up
// restarts.
const givenUpEventLimit = 1000

// follow calls step now, then each time the app changes and at least every
// poll interval, until step reports done or fails, or ctx ends; then it
// returns ctx's error. app "" follows the whole namespace.
func (c *cluster) follow(ctx context.Context, app string, step func(context.Context) (done bool, err error)) error {
	watchCtx, stopWatch := context.WithCancel(ctx)
	changed := make(chan struct{}, 1)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		c.watchChanges(watchCtx, app, changed)
	}()
	defer func() {
		stopWatch()
		<-watchDone
	}()
	tick := time.NewTicker(watchPollInterval)
	defer tick.Stop()
	watching := watchDone
	for {
		done, err := step(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-tick.C:
		case <-watching:
			// The server cannot watch, or the stream broke: poll.
			watching = nil
			tick.Reset(pollInterval)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(readGap):
		}
	}
}

// watchChanges signals on changed (without blocking: one pending signal
// stands for any number of changes) each time a service or task of app
// changes, until the stream ends.
func (c *cluster) watchChanges(ctx context.Context, app string, changed chan<- struct{}) {
	stream, err := c.Watch(ctx, &berthv1.WatchRequest{Namespace: c.namespace, App: app, AllNamespaces: c.allNamespaces})
	if err != nil {
		return
	}
	for {
		ev, err := stream.Recv()
		if err != nil {
			return
		}
		// Nodes change with every heartbeat; what is waited for shows in
		// services and tasks.
		if ev.GetNode() != nil {
			continue
		}
		select {
		case changed <- struct{}{}:
		default:
		}
	}
}

// appRead is one read of the services of an app (or of one of them) with
// their tasks.
type appRead struct {
	// services are sorted by app and name.
	services []*berthv1.Service
	tasks    map[string][]*berthv1.Task // by service ID
	givenUp  map[string]bool
	nodes    map[string]string
}

// input is what judgeRollout needs of svc.
func (r *appRead) input(svc *berthv1.Service) rolloutInput {
	return rolloutInput{Service: svc, Tasks: r.tasks[svc.GetMeta().GetId()], GivenUp: r.givenUp, NodeNames: r.nodes}
}

// readApp reads the services of app (only the one named service when it
// is set) with their tasks, and the restarts given up when a task ended
// while it was meant to run.
func (c *cluster) readApp(ctx context.Context, app, service string) (*appRead, error) {
	svcs, err := c.ListServices(ctx, &berthv1.ListServicesRequest{Namespace: c.namespace, App: app})
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	r := &appRead{tasks: map[string][]*berthv1.Task{}, givenUp: map[string]bool{}}
	global := false
	for _, s := range svcs.GetServices() {
		svc := s.GetService()
		if service != "" && svc.GetName() != service {
			continue
		}
		r.services = append(r.services, svc)
		global = global || svc.GetSpec().GetMode() == berthv1.ServiceMode_SERVICE_MODE_GLOBAL
	}
	slices.SortFunc(r.services, func(a, b *berthv1.Service) int {
		return cmp.Or(cmp.Compare(a.GetApp(), b.GetApp()), cmp.Compare(a.GetName(), b.GetName()))
	})
	tasks, err := c.ListTasks(ctx, &berthv1.ListTasksRequest{Namespace: c.namespace, App: app, Service: service})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	var ended *timestamppb.Timestamp
	for _, t := range tasks.GetTasks() {
		r.tasks[t.GetServiceId()] = append(r.tasks[t.GetServiceId()], t)
		if t.GetDesiredState() == berthv1.TaskState_TASK_STATE_RUNNING && taskstate.Terminal(t.GetStatus().GetState()) {
			if at := t.GetStatus().GetTimestamp(); ended == nil || at.AsTime().Before(ended.AsTime()) {
				ended = at
			}
		}
	}
	if ended != nil {
		// Only a task that ended while meant to run can have been given up,
		// and only after it ended.
		events, err := c.ListEvents(ctx, &berthv1.ListEventsRequest{
			Namespace: c.namespace, App: app, Service: service, Limit: givenUpEventLimit,
			Since: timestamppb.New(ended.AsTime().Add(-time.Second)),
		})
		if err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		for _, ev := range events.GetEvents() {
			if ev.GetKind() == "task" && ev.GetAction() == actionRestartGivenUp {
				r.givenUp[ev.GetObjectId()] = true
			}
		}
	}
	if global {
		if r.nodes, err = c.nodeNames(ctx); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// progress prints a line for a service each time its verdict changes in
// a way worth telling (phase, rollout state, tasks updated), and when only
// its reason changes, at most every reasonGap.
type progress struct {
	w    io.Writer
	last map[string]printedLine
	now  func() time.Time
}

// printedLine is what was last printed for a service.
type printedLine struct {
	key, reason string
	at          time.Time
}

// reasonGap is how often a service's line is printed again when only its
// reason changed, such as the percentage of an image pull.
const reasonGap = time.Second

func newProgress(w io.Writer) *progress {
	return &progress{w: w, last: map[string]printedLine{}, now: time.Now}
}

// report prints a service's line when its state or counts change, and at
// most every reasonGap when only the reason changes (an image being
// pulled on a node: "web.1 preparing: pulling 40% (...) from peer alpha").
func (p *progress) report(name string, v rolloutVerdict) {
	key := fmt.Sprint(v.Phase, v.State, v.Updated, v.Wanted)
	last, now := p.last[name], p.now()
	if last.key == key && (last.reason == v.Reason || now.Sub(last.at) < reasonGap) {
		return
	}
	p.last[name] = printedLine{key: key, reason: v.Reason, at: now}
	fmt.Fprintf(p.w, "%s: %s\n", name, v.summary())
}

// appliedApp is what waitConverged knows of an apply: the services it
// asked for and, for the ones it created or changed, the version (etcd
// revision) each had before, so that a read from before the apply is not
// taken for its result.
type appliedApp struct {
	app      string
	services []string
	// before maps the services apply created or updated to their
	// meta.version before it (0 for new ones).
	before map[string]int64
}

// waitConverged waits until every service of an apply has converged (see
// judgeRollout), printing a line per service state change to w. It fails
// as soon as a service fails, and when ctx ends, naming the services that
// have not converged and why.
func (c *cluster) waitConverged(ctx context.Context, w io.Writer, a appliedApp, timeout time.Duration) error {
	start := time.Now()
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := newProgress(w)
	// pending says why each service has not converged, as of the last
	// read that answered.
	pending := map[string]string{}
	for _, name := range a.services {
		pending[name] = "not read yet"
	}
	err := c.follow(waitCtx, a.app, func(ctx context.Context) (bool, error) {
		r, err := c.readApp(ctx, a.app, "")
		if err != nil {
			return false, err
		}
		byName := map[string]*berthv1.Service{}
		for _, svc := range r.services {
			byName[svc.GetName()] = svc
		}
		clear(pending)
		var failed []string
		for _, name := range a.services {
			full := a.app + "/" + name
			svc := byName[name]
			if before, changed := a.before[name]; changed && (svc == nil || svc.GetMeta().GetVersion() == before) {
				pending[name] = "the server has not shown the applied spec yet"
				continue
			}
			v := judgeRollout(r.input(svc))
			p.report(full, v)
			switch v.Phase {
			case phaseFailed:
				failed = append(failed, fmt.Sprintf("%s: %s", full, v.Reason))
			case phaseConverging:
				pending[name] = v.summary()
			}
		}
		if len(failed) > 0 {
			return false, fmt.Errorf("%s did not converge: %s; see `berth rollout status` and `berth events %s`",
				a.app, strings.Join(failed, "; "), a.app)
		}
		return len(pending) == 0, nil
	})
	switch {
	case err == nil:
		fmt.Fprintf(w, "%s converged in %s\n", a.app, time.Since(start).Round(100*time.Millisecond))
		return nil
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		names := slices.Sorted(maps.Keys(pending))
		lines := make([]string, len(names))
		for i, n := range names {
			lines[i] = fmt.Sprintf("%s/%s: %s", a.app, n, pending[n])
		}
		return fmt.Errorf("timed out after %s: %d of %d services have not converged (%s); the rollout goes on, follow it with `berth rollout status APP/SERVICE -w`",
			timeout, len(names), len(a.services), strings.Join(lines, "; "))
	case isCanceled(ctx, err):
		return fmt.Errorf("stopped waiting; the rollout goes on: %w", err)
	}
	return err
}

// serviceVersions maps the services of app to their meta.version, read
// before an apply to tell its result from what was there.
func (c *cluster) serviceVersions(ctx context.Context, app string) (map[string]int64, error) {
	resp, err := c.ListServices(ctx, &berthv1.ListServicesRequest{Namespace: c.namespace, App: app})
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	out := map[string]int64{}
	for _, s := range resp.GetServices() {
		out[s.GetService().GetName()] = s.GetService().GetMeta().GetVersion()
	}
	return out, nil
}

// applied describes an apply for waitConverged: the services asked for
// and, for those it created or updated, their versions from before.
func applied(app string, services []*berthv1.Service, changes []*berthv1.ServiceChange, versions map[string]int64) appliedApp {
	a := appliedApp{app: app, before: map[string]int64{}}
	for _, svc := range services {
		a.services = append(a.services, svc.GetName())
	}
	for _, ch := range changes {
		switch ch.GetAction() {
		case berthv1.ChangeAction_CHANGE_ACTION_CREATE, berthv1.ChangeAction_CHANGE_ACTION_UPDATE:
			a.before[ch.GetService()] = versions[ch.GetService()]
		}
	}
	return a
}
