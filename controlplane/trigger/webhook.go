package trigger

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/seal"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// HooksPrefix is where the HTTP API takes webhooks.
const HooksPrefix = "/hooks/"

// maxHookBody bounds a webhook's body; GitHub's push payloads of even
// large pushes stay far below it.
const maxHookBody = 5 << 20

// KeepRuns is how many runs of a trigger are kept: older finished runs and
// their logs are removed when a new one is queued.
const KeepRuns = 25

// MaxQueued bounds the runs of one trigger that wait to be built: a storm
// of pushes, or a leaked secret, cannot queue builds without end.
const MaxQueued = 10

// Hooks takes webhooks at /hooks/NAME (namespace default) and
// /hooks/NAMESPACE/NAME. It is not a gRPC method and asks for no
// certificate or token: a request is authorised by its
// X-Hub-Signature-256, an HMAC-SHA256 of the body under the trigger's
// secret, checked in constant time. A missing or bad signature is
// answered 401 and changes nothing. A signed push to the trigger's branch
// queues a run (202); other events and branches are answered 200 and
// ignored, saying so.
type Hooks struct {
	Records *Records
	Store   *store.Store
	// KEK opens the triggers' sealed secrets; nil answers 503.
	KEK *seal.Key
	Log *slog.Logger
}

var _ http.Handler = (*Hooks)(nil)

// hookAnswer is a webhook's JSON answer.
type hookAnswer struct {
	Message string `json:"message"`
	Run     string `json:"run,omitempty"`
	Commit  string `json:"commit,omitempty"`
	Ignored bool   `json:"ignored,omitempty"`
}

func answer(w http.ResponseWriter, code int, a hookAnswer) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(a)
}

// ServeHTTP takes one webhook.
func (h *Hooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		answer(w, http.StatusMethodNotAllowed, hookAnswer{Message: "webhooks are sent with POST"})
		return
	}
	ns, name, ok := hookTarget(r.URL.Path)
	if !ok {
		answer(w, http.StatusNotFound, hookAnswer{Message: "webhooks go to /hooks/NAME or /hooks/NAMESPACE/NAME; `berth trigger ls` shows each trigger's path"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxHookBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			answer(w, http.StatusRequestEntityTooLarge, hookAnswer{Message: fmt.Sprintf("the webhook's body is over %d bytes", maxHookBody)})
			return
		}
		answer(w, http.StatusBadRequest, hookAnswer{Message: "reading the webhook's body: " + err.Error()})
		return
	}
	trig, ok := h.Records.Trigger(ns, name)
	if !ok {
		answer(w, http.StatusNotFound, hookAnswer{Message: fmt.Sprintf("no trigger %q in namespace %q", name, ns)})
		return
	}
	if h.KEK == nil {
		answer(w, http.StatusServiceUnavailable, hookAnswer{Message: "this server has no key-encryption key to open webhook secrets with"})
		return
	}
	secret, err := OpenSecret(h.KEK, ns, name, trig.SealedSecret)
	if err != nil {
		h.Log.Error("webhook", "trigger", ns+"/"+name, "err", err)
		answer(w, http.StatusServiceUnavailable, hookAnswer{Message: err.Error()})
		return
	}
	if err := Verify(secret, body, r.Header.Get(SignatureHeader)); err != nil {
		// Logged without the header's value: it says nothing of use, and
		// a near-miss must not become an oracle.
		h.Log.Warn("webhook refused", "trigger", ns+"/"+name, "from", r.RemoteAddr, "err", err)
		answer(w, http.StatusUnauthorized, hookAnswer{Message: err.Error()})
		return
	}
	switch event := eventName(r.Header); event {
	case "ping":
		answer(w, http.StatusOK, hookAnswer{Message: fmt.Sprintf("trigger %s is ready: it builds pushes to branch %s", name, trig.Branch)})
		return
	case "", "push", "Push Hook":
	default:
		answer(w, http.StatusOK, hookAnswer{Ignored: true, Message: fmt.Sprintf("%s event ignored: a trigger builds push events", event)})
		return
	}
	push, err := ParsePush(body)
	if err != nil {
		answer(w, http.StatusBadRequest, hookAnswer{Message: err.Error()})
		return
	}
	d := Decide(push, trig.Branch)
	if !d.Build {
		answer(w, http.StatusOK, hookAnswer{Ignored: true, Message: d.Reason})
		return
	}
	waiting := 0
	for _, queued := range h.Records.RunsOf(trig.Namespace, trig.Name) {
		if queued.State != berthv1.TriggerRunState_TRIGGER_RUN_STATE_QUEUED {
			continue
		}
		if queued.Commit == d.Commit {
			// A redelivery, or the same commit pushed again before it
			// was built: one run builds it.
			answer(w, http.StatusOK, hookAnswer{Run: queued.Id, Commit: queued.Commit,
				Message: fmt.Sprintf("commit %s is already queued as run %s", shortCommit(queued.Commit), queued.Id)})
			return
		}
		waiting++
	}
	if waiting >= MaxQueued {
		h.Log.Warn("webhook: too many runs waiting", "trigger", ns+"/"+name, "waiting", waiting)
		answer(w, http.StatusTooManyRequests, hookAnswer{Message: fmt.Sprintf("%d runs of trigger %s already wait to be built (at most %d); push again once they ran (`berth trigger runs %s`)", waiting, name, MaxQueued, name)})
		return
	}
	run, err := h.queue(r, trig, push, d.Commit)
	if err != nil {
		h.Log.Error("webhook: queueing a run", "trigger", ns+"/"+name, "err", err)
		answer(w, http.StatusServiceUnavailable, hookAnswer{Message: "the run could not be recorded: " + err.Error()})
		return
	}
	h.Log.Info("webhook: run queued", "trigger", ns+"/"+name, "run", run.Id, "commit", run.Commit)
	answer(w, http.StatusAccepted, hookAnswer{Run: run.Id, Commit: run.Commit,
		Message: fmt.Sprintf("run %s queued: builds commit %s of branch %s", run.Id, shortCommit(run.Commit), run.Branch)})
}

// queue records a queued run of trig for commit, and drops the oldest
// finished runs past KeepRuns in the same write.
func (h *Hooks) queue(r *http.Request, trig *berthv1.Trigger, push Push, commit string) (*berthv1.TriggerRun, error) {
	run := &berthv1.TriggerRun{
		Id: newRunID(), Namespace: trig.Namespace, Trigger: trig.Name, Commit: commit, Branch: push.Branch(),
		State: berthv1.TriggerRunState_TRIGGER_RUN_STATE_QUEUED, Message: "waiting to be built",
		Pusher: push.Who(), CreatedAt: timestamppb.New(time.Now()),
	}
	var txn store.Txn
	txn.Create(RunKey(run.Namespace, run.Trigger, run.Id), run)
	// The trigger must still be there when the run is written.
	txn.Guard(Key(trig.Namespace, trig.Name), trig.GetMeta().GetVersion())
	for _, old := range prunable(h.Records.RunsOf(trig.Namespace, trig.Name)) {
		txn.Delete(RunKey(old.Namespace, old.Trigger, old.Id), 0)
		txn.Delete(LogKey(old.Namespace, old.Trigger, old.Id), 0)
	}
	rev, err := h.Store.Commit(r.Context(), &txn)
	if err != nil {
		return nil, err
	}
	return run, h.Records.Runs.WaitRevision(r.Context(), rev)
}

// prunable is the finished runs, of runs newest first, that make room for
// one more within KeepRuns.
func prunable(runs []*berthv1.TriggerRun) []*berthv1.TriggerRun {
	var out []*berthv1.TriggerRun
	for i, run := range runs {
		if i >= KeepRuns-1 && Finished(run.State) {
			out = append(out, run)
		}
	}
	return out
}

// hookTarget reads the namespace and trigger name from a webhook's path.
func hookTarget(path string) (ns, name string, ok bool) {
	rest, ok := strings.CutPrefix(path, HooksPrefix)
	if !ok {
		return "", "", false
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 1 && parts[0] != "":
		return "default", parts[0], true
	case len(parts) == 2 && parts[0] != "" && parts[1] != "":
		return parts[0], parts[1], true
	}
	return "", "", false
}

// eventName is the event a webhook tells of: GitHub's, Gitea's, Gogs'
// or GitLab's header; "" when none is sent (taken as a push).
func eventName(h http.Header) string {
	for _, k := range []string{"X-GitHub-Event", "X-Gitea-Event", "X-Gogs-Event", "X-Gitlab-Event"} {
		if v := h.Get(k); v != "" {
			return v
		}
	}
	return ""
}

// shortCommit is a commit id as people read it.
func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// newRunID is a run's id: short enough to type.
func newRunID() string { return store.NewID()[:12] }

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
