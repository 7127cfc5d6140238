// Package trigger runs automated builds: a push to a git branch, told by a
// webhook signed with the trigger's secret, builds that commit on a node
// (whose BuildKit fetches the repository), pushes the image to its
// registry, scans and signs it, and rolls a service out to its digest.
//
// Triggers and their runs are stored in etcd; any server takes webhooks
// (Hooks) and records a queued run; the leader's Runner executes queued
// runs, one at a time per trigger, and records each step and a bounded
// log. The webhook is not a gRPC method: it is authorised by its HMAC
// signature alone (see Hooks).
package trigger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/seal"
	"github.com/berthproject/berth/controlplane/store"
)

// Scanner scans an image a trigger built. ScanImage scans REG/REPO@digest
// (image is REG/REPO), which the node whose ID is node holds (it built
// it; the image is also in its registry by then), stores the findings,
// and returns an error naming them when namespace's gate refuses the
// image.
type Scanner interface {
	ScanImage(ctx context.Context, namespace, image, digest, node string) error
}

// Signer signs an image a trigger pushed. SignImage signs
// REG/REPO@digest (image is REG/REPO) with the cluster key named key and
// stores the signature in the registry.
type Signer interface {
	SignImage(ctx context.Context, namespace, image, digest, key string) error
}

// Key prefixes of what this package stores.
const (
	// TriggersPrefix holds one Trigger per trigger, by namespace and name.
	TriggersPrefix = store.Root + "triggers/"
	// RunsPrefix holds one TriggerRun per run, by namespace, trigger and id.
	RunsPrefix = store.Root + "trigger-runs/"
	// LogsPrefix holds one TriggerRunLog per run, keyed like the run.
	LogsPrefix = store.Root + "trigger-logs/"
)

// Key is where trigger name of namespace ns is stored.
func Key(ns, name string) string { return TriggersPrefix + ns + "/" + name }

// RunKey is where run id of a trigger is stored.
func RunKey(ns, trigger, id string) string { return RunsPrefix + ns + "/" + trigger + "/" + id }

// LogKey is where the log of run id of a trigger is stored.
func LogKey(ns, trigger, id string) string { return LogsPrefix + ns + "/" + trigger + "/" + id }

// runsOf is the prefix of a trigger's runs.
func runsOf(ns, trigger string) string { return RunsPrefix + ns + "/" + trigger + "/" }

// SealKind is the seal kind of webhook secrets; their name is
// seal.SecretName(namespace, trigger).
const SealKind = "webhook"

// SealSecret seals a trigger's webhook secret, bound to its namespace
// and name.
func SealSecret(kek *seal.Key, ns, name string, secret []byte) ([]byte, error) {
	return kek.Seal(SealKind, seal.SecretName(ns, name), secret)
}

// OpenSecret opens what SealSecret made.
func OpenSecret(kek *seal.Key, ns, name string, sealed []byte) ([]byte, error) {
	plain, err := kek.Open(SealKind, seal.SecretName(ns, name), sealed)
	if err != nil {
		return nil, fmt.Errorf("cannot unseal the webhook secret of trigger %s/%s (sealed under another cluster's key? create the trigger again): %w", ns, name, err)
	}
	return plain, nil
}

// HookPath is the path trigger name of namespace ns takes webhooks at:
// /hooks/NAME in namespace default, /hooks/NAMESPACE/NAME elsewhere.
func HookPath(ns, name string) string {
	if ns == "" || ns == "default" {
		return "/hooks/" + name
	}
	return "/hooks/" + ns + "/" + name
}

// Records follows the stored triggers and runs on one server: the API
// answers from them, webhooks find their trigger in them, and the
// leader's Runner executes the runs they hold.
type Records struct {
	st       *store.Store
	Triggers *store.Mirror[*berthv1.Trigger]
	Runs     *store.Mirror[*berthv1.TriggerRun]
}

// NewRecords returns the records of st; changed, when not nil, is called
// after each change of a trigger or a run (the leader's Runner.Wake).
// Both mirrors must run while the server serves (Run).
func NewRecords(st *store.Store, changed func(), log *slog.Logger) *Records {
	if changed == nil {
		changed = func() {}
	}
	return &Records{
		st: st,
		Triggers: store.NewMirror(st, TriggersPrefix, func() *berthv1.Trigger { return &berthv1.Trigger{} },
			func(string, *berthv1.Trigger, bool) { changed() }, log),
		Runs: store.NewMirror(st, RunsPrefix, func() *berthv1.TriggerRun { return &berthv1.TriggerRun{} },
			func(string, *berthv1.TriggerRun, bool) { changed() }, log),
	}
}

// Run keeps the records current until ctx ends.
func (r *Records) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- r.Triggers.Run(ctx) }()
	err := r.Runs.Run(ctx)
	return errors.Join(err, <-errc)
}

// Trigger returns trigger name of namespace ns.
func (r *Records) Trigger(ns, name string) (*berthv1.Trigger, bool) {
	return r.Triggers.Get(ns + "/" + name)
}

// RunsOf returns the runs of a trigger, newest first.
func (r *Records) RunsOf(ns, name string) []*berthv1.TriggerRun {
	var out []*berthv1.TriggerRun
	for _, run := range r.Runs.List() {
		if run.Namespace == ns && run.Trigger == name {
			out = append(out, run)
		}
	}
	sortNewestFirst(out)
	return out
}

// FindRun returns the run of namespace ns whose id is id, or the only one
// whose id starts with it.
func (r *Records) FindRun(ns, id string) (*berthv1.TriggerRun, error) {
	var found []*berthv1.TriggerRun
	for _, run := range r.Runs.List() {
		if run.Namespace != ns {
			continue
		}
		if run.Id == id {
			return run, nil
		}
		if id != "" && strings.HasPrefix(run.Id, id) {
			found = append(found, run)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w: no run %q in namespace %q; `berth trigger runs NAME` lists a trigger's runs", store.ErrNotFound, id, ns)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("run id %q is the start of %d runs' ids: give more of it", id, len(found))
}

// Log reads the log of run.
func (r *Records) Log(ctx context.Context, run *berthv1.TriggerRun) (*berthv1.TriggerRunLog, error) {
	l := &berthv1.TriggerRunLog{}
	if err := r.st.GetMessage(ctx, LogKey(run.Namespace, run.Trigger, run.Id), l); err != nil {
		if isNotFound(err) {
			return l, nil
		}
		return nil, err
	}
	return l, nil
}

// Remove removes trigger name of namespace ns with its runs and their
// logs. A run under way stops: the leader's Runner sees its trigger go.
func (r *Records) Remove(ctx context.Context, ns, name string) (bool, error) {
	var txn store.Txn
	txn.Delete(Key(ns, name), 0)
	for _, run := range r.RunsOf(ns, name) {
		txn.Delete(RunKey(ns, name, run.Id), 0)
		txn.Delete(LogKey(ns, name, run.Id), 0)
	}
	if _, ok := r.Trigger(ns, name); !ok {
		return false, nil
	}
	rev, err := r.st.Commit(ctx, &txn)
	if err != nil {
		return false, err
	}
	return true, r.Triggers.WaitRevision(ctx, rev)
}

// sortNewestFirst sorts runs by creation, newest first, then by id.
func sortNewestFirst(runs []*berthv1.TriggerRun) {
	slices.SortFunc(runs, func(a, b *berthv1.TriggerRun) int {
		if c := b.GetCreatedAt().AsTime().Compare(a.GetCreatedAt().AsTime()); c != 0 {
			return c
		}
		return strings.Compare(b.Id, a.Id)
	})
}
