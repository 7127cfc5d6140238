package trigger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/gitcontext"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Cluster is what a run asks of the rest of the control plane.
type Cluster interface {
	// Build builds h (whose context is a git URL) on a ready node,
	// writing BuildKit's progress as lines to log, and returns what it
	// built and where.
	Build(ctx context.Context, h *berthv1.BuildHeader, log func(line string)) (*berthv1.BuildResult, error)
	// Push pushes image (a tag) from node to its registry, with the
	// credentials the cluster holds.
	Push(ctx context.Context, node, image string, log func(line string)) error
	// Deploy makes image (REG/REPO@digest) the image of service
	// app/service of namespace, a new spec version rolled out by its
	// update_config, and returns that version; changed is false when the
	// service ran that digest already.
	Deploy(ctx context.Context, namespace, app, service, image, digest, cause string) (version uint64, changed bool, err error)
	// WaitRollout waits until the rollout of version ends: nil when it
	// completed, else an error saying why it stopped (paused, rolled back,
	// replaced by another version).
	WaitRollout(ctx context.Context, namespace, app, service string, version uint64) error
}

// RunnerConfig is what a Runner needs.
type RunnerConfig struct {
	Records *Records
	Store   *store.Store
	Cluster Cluster
	// Scanner and Signer are nil when the cluster has none: a run then
	// records "scan: not configured", and a trigger that signs fails.
	Scanner Scanner
	Signer  Signer
	// RolloutTimeout bounds the wait for a rollout; default 15 minutes.
	RolloutTimeout time.Duration
	Log            *slog.Logger
}

// Runner executes queued runs on the leader: one at a time per trigger,
// in the order they were queued. Runs the previous leader left under way
// are marked failed when it starts (a push again, or a redelivery of the
// webhook, builds them again).
type Runner struct {
	cfg  RunnerConfig
	wake chan struct{}

	mu     sync.Mutex
	active map[string]context.CancelFunc // by trigger key
}

// NewRunner returns a Runner; wire Wake to the run records' changes.
func NewRunner(cfg RunnerConfig) *Runner {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.RolloutTimeout == 0 {
		cfg.RolloutTimeout = 15 * time.Minute
	}
	return &Runner{cfg: cfg, wake: make(chan struct{}, 1), active: map[string]context.CancelFunc{}}
}

// Wake tells the Runner that runs or triggers changed.
func (r *Runner) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run executes runs until ctx ends (the leadership does), then waits for
// the runs under way, which ctx's end cancels.
func (r *Runner) Run(ctx context.Context) error {
	if err := r.cfg.Records.Runs.WaitSynced(ctx); err != nil {
		return nil
	}
	if err := r.cfg.Records.Triggers.WaitSynced(ctx); err != nil {
		return nil
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	r.failInterrupted(ctx)
	for {
		r.schedule(ctx, &wg)
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		}
	}
}

// failInterrupted marks failed the runs that were under way when the
// previous leader stopped: their build or rollout may or may not have
// finished, and a run is not resumed half way.
func (r *Runner) failInterrupted(ctx context.Context) {
	for _, run := range r.cfg.Records.Runs.List() {
		if Finished(run.State) || run.State == berthv1.TriggerRunState_TRIGGER_RUN_STATE_QUEUED {
			continue
		}
		next := proto.Clone(run).(*berthv1.TriggerRun)
		next.Message = fmt.Sprintf("interrupted while %s: the server running it stopped or lost its leadership; push again (or redeliver the webhook) to build it", stateWord(run.State))
		next.State = berthv1.TriggerRunState_TRIGGER_RUN_STATE_FAILED
		next.FinishedAt = timestamppb.Now()
		if err := r.put(ctx, next); err != nil {
			r.cfg.Log.Warn("trigger: marking an interrupted run failed", "run", run.Id, "err", err)
		}
	}
}

// schedule starts the oldest queued run of every trigger that has none
// under way, and stops the runs whose trigger went.
func (r *Runner) schedule(ctx context.Context, wg *sync.WaitGroup) {
	next := map[string]*berthv1.TriggerRun{}
	for _, run := range r.cfg.Records.Runs.List() {
		if run.State != berthv1.TriggerRunState_TRIGGER_RUN_STATE_QUEUED {
			continue
		}
		k := Key(run.Namespace, run.Trigger)
		if cur, ok := next[k]; !ok || olderThan(run, cur) {
			next[k] = run
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, cancel := range r.active {
		ns, name, _ := strings.Cut(strings.TrimPrefix(k, TriggersPrefix), "/")
		if _, ok := r.cfg.Records.Trigger(ns, name); !ok {
			cancel()
		}
	}
	for k, run := range next {
		if _, busy := r.active[k]; busy {
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		r.active[k] = cancel
		wg.Go(func() {
			defer func() {
				r.mu.Lock()
				delete(r.active, k)
				r.mu.Unlock()
				cancel()
				r.Wake()
			}()
			r.execute(rctx, run)
		})
	}
}

// busy reports whether a run is under way.
func (r *Runner) busy() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.active) > 0
}

func olderThan(a, b *berthv1.TriggerRun) bool {
	if c := a.GetCreatedAt().AsTime().Compare(b.GetCreatedAt().AsTime()); c != 0 {
		return c < 0
	}
	return a.Id < b.Id
}

// Finished reports whether a run in state st has ended.
func Finished(st berthv1.TriggerRunState) bool {
	return st == berthv1.TriggerRunState_TRIGGER_RUN_STATE_SUCCEEDED || st == berthv1.TriggerRunState_TRIGGER_RUN_STATE_FAILED
}

// execution is one run being executed.
type execution struct {
	r    *Runner
	run  *berthv1.TriggerRun
	trig *berthv1.Trigger
	log  runLog
	// lastFlush is when the log was last written during a build.
	lastFlush time.Time
	// since is when the current step began, for the time it took.
	since time.Time
}

// execute takes run through its steps, recording each. A step that fails
// ends the run failed, before anything of the service changed (unless the
// rollout itself failed).
func (r *Runner) execute(ctx context.Context, run *berthv1.TriggerRun) {
	e := &execution{r: r, run: proto.Clone(run).(*berthv1.TriggerRun)}
	trig, ok := r.cfg.Records.Trigger(run.Namespace, run.Trigger)
	if !ok {
		return // removed with its runs
	}
	e.trig = trig
	e.run.StartedAt = timestamppb.Now()
	err := e.steps(ctx)
	if ctx.Err() != nil {
		// Lost the leadership (the next leader marks it failed) or the
		// trigger was removed (with the run).
		return
	}
	if err != nil {
		e.finish(ctx, berthv1.TriggerRunState_TRIGGER_RUN_STATE_FAILED, err.Error())
	}
}

// steps runs the build, push, scan, sign and rollout.
func (e *execution) steps(ctx context.Context) error {
	cfg := &e.r.cfg
	t, run := e.trig, e.run
	if t.SignKey != "" && cfg.Signer == nil {
		return e.fail("sign", errors.New("signing is not available on this cluster; remove --sign from the trigger (create it again) or enable signing"))
	}

	// Build.
	tags := []string{t.Image + ":" + run.Commit}
	if bt := branchTag(run.Branch); bt != "" {
		tags = append(tags, t.Image+":"+bt)
	}
	src := gitcontext.WithRef(t.Git, run.Commit, t.Path)
	if err := e.enter(ctx, berthv1.TriggerRunState_TRIGGER_RUN_STATE_BUILDING, "building "+src); err != nil {
		return err
	}
	res, err := cfg.Cluster.Build(ctx, &berthv1.BuildHeader{Tags: tags, GitContext: src}, e.progress(ctx))
	if err != nil {
		return e.fail("build", err)
	}
	run.Node, run.Digest = res.GetNodeName(), res.GetDigest()
	run.Image = t.Image + "@" + res.GetDigest()
	e.step(fmt.Sprintf("build: %s on node %s", run.Image, run.Node))

	// Push, both tags.
	if err := e.enter(ctx, berthv1.TriggerRunState_TRIGGER_RUN_STATE_PUSHING, "pushing "+strings.Join(tags, ", ")); err != nil {
		return err
	}
	for _, tag := range tags {
		if err := cfg.Cluster.Push(ctx, cmpOr(res.GetNodeId(), res.GetNodeName()), tag, e.line); err != nil {
			return e.fail("push", err)
		}
	}
	e.step("push: " + strings.Join(tags, ", "))

	// Scan.
	if cfg.Scanner == nil {
		e.step("scan: not configured")
	} else {
		if err := e.enter(ctx, berthv1.TriggerRunState_TRIGGER_RUN_STATE_SCANNING, "scanning "+run.Image); err != nil {
			return err
		}
		if err := cfg.Scanner.ScanImage(ctx, run.Namespace, t.Image, run.Digest, cmpOr(res.GetNodeId(), res.GetNodeName())); err != nil {
			return e.fail("scan", err)
		}
		e.step("scan: passed")
	}

	// Sign.
	if t.SignKey != "" {
		if err := e.enter(ctx, berthv1.TriggerRunState_TRIGGER_RUN_STATE_SIGNING, "signing "+run.Image+" with key "+t.SignKey); err != nil {
			return err
		}
		if err := cfg.Signer.SignImage(ctx, run.Namespace, t.Image, run.Digest, t.SignKey); err != nil {
			return e.fail("sign", err)
		}
		e.step("sign: signed with key " + t.SignKey)
	}

	// Roll out.
	if err := e.enter(ctx, berthv1.TriggerRunState_TRIGGER_RUN_STATE_ROLLING_OUT, "rolling out "+run.Image+" to "+t.App+"/"+t.Service); err != nil {
		return err
	}
	cause := fmt.Sprintf("trigger %s: commit %s of %s", t.Name, shortCommit(run.Commit), run.Branch)
	version, changed, err := cfg.Cluster.Deploy(ctx, run.Namespace, t.App, t.Service, run.Image, run.Digest, cause)
	if err != nil {
		return e.fail("rollout", err)
	}
	if !changed {
		e.step("rollout: the service runs this digest already")
		e.finish(ctx, berthv1.TriggerRunState_TRIGGER_RUN_STATE_SUCCEEDED, fmt.Sprintf("%s/%s runs %s already", t.App, t.Service, run.Image))
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, cfg.RolloutTimeout)
	defer cancel()
	if err := cfg.Cluster.WaitRollout(wctx, run.Namespace, t.App, t.Service, version); err != nil {
		if ctx.Err() == nil && wctx.Err() != nil {
			err = fmt.Errorf("version %d did not finish rolling out within %s; `berth describe service %s/%s` shows where it stands", version, cfg.RolloutTimeout, t.App, t.Service)
		}
		return e.fail("rollout", err)
	}
	e.step(fmt.Sprintf("rollout: version %d of %s/%s runs %s", version, t.App, t.Service, run.Image))
	e.finish(ctx, berthv1.TriggerRunState_TRIGGER_RUN_STATE_SUCCEEDED, fmt.Sprintf("%s/%s runs %s (version %d)", t.App, t.Service, run.Image, version))
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// fail records a failed step and returns the run's failure message.
func (e *execution) fail(step string, err error) error {
	msg := fmt.Sprintf("%s failed: %v", step, err)
	if step == "rollout" {
		msg += "; the service's update_config decided what runs now"
	} else {
		msg += "; the service still runs what it ran"
	}
	e.step(msg)
	return errors.New(msg)
}

// step records a step's outcome in the run, and in its log with the time
// the step took.
func (e *execution) step(s string) {
	e.run.Steps = append(e.run.Steps, s)
	if e.since.IsZero() {
		e.line("==> " + s)
		return
	}
	e.line(fmt.Sprintf("==> %s (%s)", s, time.Since(e.since).Round(time.Millisecond)))
}

// line adds a line to the run's log.
func (e *execution) line(s string) { e.log.add(s) }

// buildFlush is how often the log is written while a build runs.
const buildFlush = time.Second

// progress is the build's progress writer: each line goes to the log,
// which is written at most every buildFlush.
func (e *execution) progress(ctx context.Context) func(string) {
	return func(s string) {
		e.line(s)
		if time.Since(e.lastFlush) >= buildFlush {
			e.lastFlush = time.Now()
			e.writeLog(ctx)
		}
	}
}

// enter moves the run to state st, with message.
func (e *execution) enter(ctx context.Context, st berthv1.TriggerRunState, message string) error {
	e.run.State, e.run.Message = st, message
	e.since = time.Now()
	e.line("==> " + message)
	e.writeLog(ctx)
	if err := e.r.put(ctx, e.run); err != nil {
		return fmt.Errorf("recording the run: %w", err)
	}
	return nil
}

// finish records the run's end.
func (e *execution) finish(ctx context.Context, st berthv1.TriggerRunState, message string) {
	e.run.State, e.run.Message = st, message
	e.run.FinishedAt = timestamppb.Now()
	e.line("==> " + stateWord(st) + ": " + message)
	e.writeLog(ctx)
	if err := e.r.put(ctx, e.run); err != nil && ctx.Err() == nil {
		e.r.cfg.Log.Warn("trigger: recording a run's end", "run", e.run.Id, "err", err)
	}
	e.r.cfg.Log.Info("trigger run ended", "trigger", e.run.Namespace+"/"+e.run.Trigger, "run", e.run.Id, "state", stateWord(st), "message", message)
}

// writeLog writes the run's log when it changed.
func (e *execution) writeLog(ctx context.Context) {
	text, truncated, changed := e.log.text()
	if !changed {
		return
	}
	var txn store.Txn
	// Only while the run is there: a removed trigger takes its logs.
	txn.Guard(Key(e.run.Namespace, e.run.Trigger), e.trig.GetMeta().GetVersion())
	txn.Put(LogKey(e.run.Namespace, e.run.Trigger, e.run.Id), &berthv1.TriggerRunLog{Text: text, Truncated: truncated})
	if _, err := e.r.cfg.Store.Commit(ctx, &txn); err != nil && ctx.Err() == nil {
		e.r.cfg.Log.Warn("trigger: writing a run's log", "run", e.run.Id, "err", err)
	}
}

// put writes run, provided its trigger is still there.
func (r *Runner) put(ctx context.Context, run *berthv1.TriggerRun) error {
	trig, ok := r.cfg.Records.Trigger(run.Namespace, run.Trigger)
	if !ok {
		return fmt.Errorf("trigger %s/%s was removed", run.Namespace, run.Trigger)
	}
	var txn store.Txn
	txn.Guard(Key(run.Namespace, run.Trigger), trig.GetMeta().GetVersion())
	txn.Put(RunKey(run.Namespace, run.Trigger, run.Id), run)
	rev, err := r.cfg.Store.Commit(ctx, &txn)
	if err != nil {
		return err
	}
	return r.cfg.Records.Runs.WaitRevision(ctx, rev)
}

// tagUnsafe is what a branch name may hold that a tag may not.
var tagUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// branchTag is the image tag of a branch: its name with other characters
// as '-', at most 128 characters, never starting with '.' or '-'; "" when
// nothing is left.
func branchTag(branch string) string {
	t := tagUnsafe.ReplaceAllString(branch, "-")
	t = strings.TrimLeft(t, ".-")
	if len(t) > 128 {
		t = t[:128]
	}
	return t
}

// stateWord is a run state as users read it.
func stateWord(st berthv1.TriggerRunState) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(st.String(), "TRIGGER_RUN_STATE_")), "_", " ")
}
