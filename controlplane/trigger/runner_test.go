package trigger

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/seal"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	commitA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	commitB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	digestA = "sha256:" + "1111111111111111111111111111111111111111111111111111111111111111"
)

// fakeCluster records what runs ask of the cluster.
type fakeCluster struct {
	mu       sync.Mutex
	builds   []*berthv1.BuildHeader
	pushes   []string
	deploys  []string
	buildErr error
	// buildGate, when set, holds each build until it receives.
	buildGate  chan struct{}
	buildStart chan string
	rolloutErr error
	unchanged  bool
}

func (f *fakeCluster) Build(ctx context.Context, h *berthv1.BuildHeader, log func(string)) (*berthv1.BuildResult, error) {
	f.mu.Lock()
	f.builds = append(f.builds, h)
	gate, started := f.buildGate, f.buildStart
	f.mu.Unlock()
	if started != nil {
		started <- h.GitContext
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	log("#1 [1/2] FROM localhost/base")
	log("#2 [2/2] RUN make")
	if f.buildErr != nil {
		return nil, f.buildErr
	}
	return &berthv1.BuildResult{NodeId: "n1", NodeName: "alpha", Image: h.Tags[0], Digest: digestA}, nil
}

func (f *fakeCluster) Push(ctx context.Context, node, image string, log func(string)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pushes = append(f.pushes, node+" "+image)
	return nil
}

func (f *fakeCluster) Deploy(ctx context.Context, ns, app, service, image, digest, cause string) (uint64, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deploys = append(f.deploys, ns+"/"+app+"/"+service+" "+image+" "+cause)
	return 7, !f.unchanged, nil
}

func (f *fakeCluster) WaitRollout(ctx context.Context, ns, app, service string, version uint64) error {
	return f.rolloutErr
}

type fakeScanner struct {
	mu    sync.Mutex
	calls []string
	err   error
}

func (f *fakeScanner) ScanImage(ctx context.Context, ns, image, digest, node string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, ns+" "+image+"@"+digest+" on "+node)
	return f.err
}

type fakeSigner struct {
	mu    sync.Mutex
	calls []string
	err   error
}

func (f *fakeSigner) SignImage(ctx context.Context, ns, image, digest, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, ns+" "+image+"@"+digest+" key "+key)
	return f.err
}

// runnerHarness is a store with trigger records, and a Runner leading.
type runnerHarness struct {
	t       *testing.T
	st      *store.Store
	records *Records
	kek     *seal.Key
}

func newRunnerHarness(t *testing.T) *runnerHarness {
	st := storetest.New(t)
	raw, err := seal.Generate()
	if err != nil {
		t.Fatal(err)
	}
	kek, err := seal.New(raw)
	if err != nil {
		t.Fatal(err)
	}
	return &runnerHarness{t: t, st: st, kek: kek}
}

// start runs the records and a Runner over cfg's fakes until the test ends.
func (h *runnerHarness) start(cfg RunnerConfig) *Runner {
	var runner *Runner
	h.records = NewRecords(h.st, func() { runner.Wake() }, slog.New(slog.DiscardHandler))
	cfg.Records, cfg.Store, cfg.Log = h.records, h.st, slog.New(slog.DiscardHandler)
	runner = NewRunner(cfg)
	storetest.RunMirror(h.t, h.records.Triggers)
	storetest.RunMirror(h.t, h.records.Runs)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); runner.Run(ctx) }()
	h.t.Cleanup(func() { cancel(); <-done })
	return runner
}

// addTrigger stores a trigger web of namespace default.
func (h *runnerHarness) addTrigger(sign string) *berthv1.Trigger {
	sealed, err := SealSecret(h.kek, "default", "web", []byte("secret"))
	if err != nil {
		h.t.Fatal(err)
	}
	trig := &berthv1.Trigger{
		Meta: &berthv1.Meta{Id: "t1", CreatedAt: timestamppb.Now()}, Namespace: "default", Name: "web",
		Git: "git://127.0.0.1:9418/web", Branch: "feature/x", Path: "app", Image: "127.0.0.1:5000/team/web",
		App: "shop", Service: "web", SignKey: sign, SealedSecret: sealed,
	}
	h.putMsg(Key("default", "web"), trig)
	return trig
}

// putMsg writes msg at key and waits until the records hold it.
func (h *runnerHarness) putMsg(key string, msg proto.Message) {
	h.t.Helper()
	var txn store.Txn
	txn.Put(key, msg)
	ctx := context.Background()
	rev, err := h.st.Commit(ctx, &txn)
	if err != nil {
		h.t.Fatal(err)
	}
	m := h.records.Runs.WaitRevision
	if strings.HasPrefix(key, TriggersPrefix) {
		m = h.records.Triggers.WaitRevision
	}
	if err := m(ctx, rev); err != nil {
		h.t.Fatal(err)
	}
}

// addRun stores a run of trigger web in state st.
func (h *runnerHarness) addRun(id, commit string, st berthv1.TriggerRunState, age time.Duration) {
	h.putMsg(RunKey("default", "web", id), &berthv1.TriggerRun{
		Id: id, Namespace: "default", Trigger: "web", Commit: commit, Branch: "feature/x", State: st,
		CreatedAt: timestamppb.New(time.Now().Add(-age)),
	})
}

// waitRun waits until run id has ended, and returns it.
func (h *runnerHarness) waitRun(id string, want func(*berthv1.TriggerRun) bool) *berthv1.TriggerRun {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if run, ok := h.records.Runs.Get("default/web/" + id); ok && want(run) {
			return run
		}
		if time.Now().After(deadline) {
			run, _ := h.records.Runs.Get("default/web/" + id)
			h.t.Fatalf("run %s never reached the state wanted; it is %v", id, run)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		h.records.Runs.WaitRevision(ctx, h.records.Runs.Revision()+1)
		cancel()
	}
}

func ended(run *berthv1.TriggerRun) bool { return Finished(run.State) }

func TestRunnerSucceeds(t *testing.T) {
	for _, tt := range []struct {
		name     string
		scanner  *fakeScanner
		sign     string
		wantStep string
	}{
		{name: "scan and sign", scanner: &fakeScanner{}, sign: "release", wantStep: "sign: signed with key release"},
		{name: "no scanner", sign: "", wantStep: "scan: not configured"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newRunnerHarness(t)
			fc, signer := &fakeCluster{}, &fakeSigner{}
			cfg := RunnerConfig{Cluster: fc, Signer: signer}
			if tt.scanner != nil {
				cfg.Scanner = tt.scanner
			}
			h.start(cfg)
			h.addTrigger(tt.sign)
			h.addRun("r1", commitA, berthv1.TriggerRunState_TRIGGER_RUN_STATE_QUEUED, 0)
			run := h.waitRun("r1", ended)
			if run.State != berthv1.TriggerRunState_TRIGGER_RUN_STATE_SUCCEEDED {
				t.Fatalf("run = %v, want succeeded", run)
			}
			if want := "127.0.0.1:5000/team/web@" + digestA; run.Image != want || run.Node != "alpha" {
				t.Errorf("run image %q on %q, want %q on alpha", run.Image, run.Node, want)
			}
			if !slices.Contains(run.Steps, tt.wantStep) {
				t.Errorf("steps %q lack %q", run.Steps, tt.wantStep)
			}
			fc.mu.Lock()
			defer fc.mu.Unlock()
			wantTags := []string{"127.0.0.1:5000/team/web:" + commitA, "127.0.0.1:5000/team/web:feature-x"}
			if len(fc.builds) != 1 || !slices.Equal(fc.builds[0].Tags, wantTags) || fc.builds[0].GitContext != "git://127.0.0.1:9418/web#"+commitA+":app" {
				t.Errorf("builds = %v, want one of %v from the commit's app/", fc.builds, wantTags)
			}
			if want := []string{"n1 " + wantTags[0], "n1 " + wantTags[1]}; !slices.Equal(fc.pushes, want) {
				t.Errorf("pushes = %q, want %q", fc.pushes, want)
			}
			if len(fc.deploys) != 1 || !strings.HasPrefix(fc.deploys[0], "default/shop/web 127.0.0.1:5000/team/web@"+digestA+" trigger web: commit aaaaaaaaaaaa of feature/x") {
				t.Errorf("deploys = %q", fc.deploys)
			}
			if tt.scanner != nil && (len(tt.scanner.calls) != 1 || tt.scanner.calls[0] != "default 127.0.0.1:5000/team/web@"+digestA+" on n1") {
				t.Errorf("scans = %q", tt.scanner.calls)
			}
			if tt.sign != "" && (len(signer.calls) != 1 || signer.calls[0] != "default 127.0.0.1:5000/team/web@"+digestA+" key release") {
				t.Errorf("signatures = %q", signer.calls)
			}
			l, err := h.records.Log(context.Background(), run)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"#2 [2/2] RUN make", "==> succeeded: shop/web runs"} {
				if !strings.Contains(l.Text, want) {
					t.Errorf("log lacks %q:\n%s", want, l.Text)
				}
			}
		})
	}
}

func TestRunnerFailures(t *testing.T) {
	tests := []struct {
		name       string
		cluster    *fakeCluster
		scanner    Scanner
		signer     Signer
		sign       string
		want       string
		wantBuild  bool
		wantDeploy bool
	}{
		{name: "build fails", cluster: &fakeCluster{buildErr: errors.New(`dockerfile parse error on line 2: unknown instruction: FROMM`)},
			want: "build failed: dockerfile parse error on line 2", wantBuild: true},
		{name: "scan gate refuses", cluster: &fakeCluster{}, scanner: &fakeScanner{err: errors.New("CVE-2024-0001 (high) in openssl 3.0.1")},
			want: "scan failed: CVE-2024-0001 (high) in openssl 3.0.1; the service still runs what it ran", wantBuild: true},
		{name: "sign asked, no signer", cluster: &fakeCluster{}, sign: "release", want: "sign failed: signing is not available"},
		{name: "sign fails", cluster: &fakeCluster{}, sign: "release", signer: &fakeSigner{err: errors.New(`no key "release"`)},
			want: `sign failed: no key "release"`, wantBuild: true},
		{name: "rollout fails", cluster: &fakeCluster{rolloutErr: errors.New("update paused: task 4f2a failed: exit code 1")},
			want: "rollout failed: update paused: task 4f2a failed", wantBuild: true, wantDeploy: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newRunnerHarness(t)
			h.start(RunnerConfig{Cluster: tt.cluster, Scanner: tt.scanner, Signer: tt.signer})
			h.addTrigger(tt.sign)
			h.addRun("r1", commitA, berthv1.TriggerRunState_TRIGGER_RUN_STATE_QUEUED, 0)
			run := h.waitRun("r1", ended)
			if run.State != berthv1.TriggerRunState_TRIGGER_RUN_STATE_FAILED || !strings.Contains(run.Message, tt.want) {
				t.Fatalf("run %v: %q, want failed with %q", run.State, run.Message, tt.want)
			}
			tt.cluster.mu.Lock()
			defer tt.cluster.mu.Unlock()
			if got := len(tt.cluster.builds) > 0; got != tt.wantBuild {
				t.Errorf("built: %v, want %v", got, tt.wantBuild)
			}
			if got := len(tt.cluster.deploys) > 0; got != tt.wantDeploy {
				t.Errorf("deployed: %v (%q), want %v", got, tt.cluster.deploys, tt.wantDeploy)
			}
		})
	}
}

func TestRunnerOneRunAtATimePerTrigger(t *testing.T) {
	h := newRunnerHarness(t)
	fc := &fakeCluster{buildGate: make(chan struct{}), buildStart: make(chan string, 2)}
	h.start(RunnerConfig{Cluster: fc})
	h.addTrigger("")
	h.addRun("r1", commitA, berthv1.TriggerRunState_TRIGGER_RUN_STATE_QUEUED, time.Second)
	h.addRun("r2", commitB, berthv1.TriggerRunState_TRIGGER_RUN_STATE_QUEUED, 0)
	first := <-fc.buildStart
	if !strings.Contains(first, commitA) {
		t.Fatalf("the first build is of %s, want the older run's commit %s", first, commitA)
	}
	h.waitRun("r1", func(r *berthv1.TriggerRun) bool {
		return r.State == berthv1.TriggerRunState_TRIGGER_RUN_STATE_BUILDING
	})
	if r2, _ := h.records.Runs.Get("default/web/r2"); r2.State != berthv1.TriggerRunState_TRIGGER_RUN_STATE_QUEUED {
		t.Fatalf("run r2 is %v while r1 builds, want queued", r2.State)
	}
	select {
	case got := <-fc.buildStart:
		t.Fatalf("a second build (%s) started while the first ran", got)
	default:
	}
	fc.buildGate <- struct{}{}
	h.waitRun("r1", ended)
	if second := <-fc.buildStart; !strings.Contains(second, commitB) {
		t.Fatalf("the second build is of %s, want %s", second, commitB)
	}
	fc.buildGate <- struct{}{}
	if r := h.waitRun("r2", ended); r.State != berthv1.TriggerRunState_TRIGGER_RUN_STATE_SUCCEEDED {
		t.Fatalf("run r2 = %v", r)
	}
}

func TestRunnerFailsRunsInterruptedByFailover(t *testing.T) {
	h := newRunnerHarness(t)
	fc := &fakeCluster{}
	// The records exist before the new leader's Runner starts.
	h.records = NewRecords(h.st, nil, slog.New(slog.DiscardHandler))
	storetest.RunMirror(t, h.records.Triggers)
	storetest.RunMirror(t, h.records.Runs)
	h.addTrigger("")
	h.addRun("r1", commitA, berthv1.TriggerRunState_TRIGGER_RUN_STATE_ROLLING_OUT, time.Minute)
	h.start(RunnerConfig{Cluster: fc})
	run := h.waitRun("r1", ended)
	if run.State != berthv1.TriggerRunState_TRIGGER_RUN_STATE_FAILED || !strings.Contains(run.Message, "interrupted while rolling out") {
		t.Fatalf("run = %v, want failed as interrupted", run)
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if len(fc.builds) != 0 {
		t.Errorf("the interrupted run was built again: %v", fc.builds)
	}
}

func TestRunnerStopsRunOfRemovedTrigger(t *testing.T) {
	h := newRunnerHarness(t)
	fc := &fakeCluster{buildGate: make(chan struct{}), buildStart: make(chan string, 1)}
	runner := h.start(RunnerConfig{Cluster: fc})
	h.addTrigger("")
	h.addRun("r1", commitA, berthv1.TriggerRunState_TRIGGER_RUN_STATE_QUEUED, 0)
	<-fc.buildStart
	if ok, err := h.records.Remove(context.Background(), "default", "web"); err != nil || !ok {
		t.Fatalf("Remove = %v, %v", ok, err)
	}
	// The build is canceled (its gate never opens) and the run ends.
	deadline := time.Now().Add(20 * time.Second)
	for runner.busy() {
		if time.Now().After(deadline) {
			t.Fatal("the run of the removed trigger did not stop")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if runs := h.records.RunsOf("default", "web"); len(runs) != 0 {
		t.Errorf("runs of the removed trigger: %v", runs)
	}
	l, err := h.records.Log(context.Background(), &berthv1.TriggerRun{Namespace: "default", Trigger: "web", Id: "r1"})
	if err != nil || l.Text != "" {
		t.Errorf("log of the removed trigger's run: %q, %v", l.GetText(), err)
	}
}
