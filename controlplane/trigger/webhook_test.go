package trigger

import (
	"cmp"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store/storetest"
)

func TestHooks(t *testing.T) {
	h := newRunnerHarness(t)
	h.records = NewRecords(h.st, nil, slog.New(slog.DiscardHandler))
	storetest.RunMirror(t, h.records.Triggers)
	storetest.RunMirror(t, h.records.Runs)
	trig := h.addTrigger("") // branch feature/x, secret "secret"
	hooks := &Hooks{Records: h.records, Store: h.st, KEK: h.kek, Log: slog.New(slog.DiscardHandler)}

	pushOf := func(branch, commit string) string {
		return `{"ref":"refs/heads/` + branch + `","after":"` + commit + `","pusher":{"name":"ann"}}`
	}
	push := func(branch string) string { return pushOf(branch, commitA) }
	tests := []struct {
		name     string
		method   string
		path     string
		event    string
		body     string
		sig      func(body string) string
		wantCode int
		wantMsg  string
		wantRun  bool
		commit   string // of the run queued; commitA when empty
	}{
		{name: "missing signature", body: push("feature/x"), sig: func(string) string { return "" }, wantCode: 401, wantMsg: "no X-Hub-Signature-256 header"},
		{name: "wrong secret", body: push("feature/x"), sig: func(b string) string { return Sign([]byte("guess"), []byte(b)) }, wantCode: 401, wantMsg: "does not match"},
		{name: "short signature", body: push("feature/x"), sig: func(b string) string { return Sign([]byte("secret"), []byte(b))[:20] }, wantCode: 401, wantMsg: "not a SHA-256 HMAC"},
		{name: "signature of another body", body: push("feature/x"), sig: func(string) string { return Sign([]byte("secret"), []byte(push("main"))) }, wantCode: 401, wantMsg: "does not match"},
		{name: "GET", method: http.MethodGet, wantCode: 405},
		{name: "unknown trigger", path: "/hooks/nope", body: push("feature/x"), wantCode: 404, wantMsg: `no trigger "nope"`},
		{name: "bad path", path: "/hooks/a/b/c", body: push("feature/x"), wantCode: 404},
		{name: "ping", event: "ping", body: `{"zen":"hi"}`, wantCode: 200, wantMsg: "builds pushes to branch feature/x"},
		{name: "other event", event: "issues", body: `{}`, wantCode: 200, wantMsg: "issues event ignored"},
		{name: "other branch", body: push("main"), wantCode: 200, wantMsg: "push to branch main ignored: the trigger builds branch feature/x"},
		{name: "not JSON", body: `ref=x`, wantCode: 400, wantMsg: "not JSON"},
		{name: "push to the branch", event: "push", body: push("feature/x"), wantCode: 202, wantMsg: "queued", wantRun: true},
		{name: "the same commit again", event: "push", body: push("feature/x"), wantCode: 200, wantMsg: "is already queued as run"},
		{name: "Gitea push", body: pushOf("feature/x", commitB), wantCode: 202, wantRun: true, commit: commitB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(h.records.RunsOf("default", "web"))
			method, path := tt.method, tt.path
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = HookPath("default", trig.Name)
			}
			req := httptest.NewRequest(method, path, strings.NewReader(tt.body))
			sig := Sign([]byte("secret"), []byte(tt.body))
			if tt.sig != nil {
				sig = tt.sig(tt.body)
			}
			if sig != "" {
				req.Header.Set(SignatureHeader, sig)
			}
			if tt.event != "" {
				req.Header.Set("X-GitHub-Event", tt.event)
			} else if tt.name == "Gitea push" {
				req.Header.Set("X-Gitea-Event", "push")
			}
			rec := httptest.NewRecorder()
			hooks.ServeHTTP(rec, req)
			var a hookAnswer
			if tt.method == "" {
				if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
					t.Fatalf("answer %q is not JSON: %v", rec.Body, err)
				}
			}
			if rec.Code != tt.wantCode || !strings.Contains(a.Message, tt.wantMsg) {
				t.Fatalf("answer %d %q, want %d with %q", rec.Code, a.Message, tt.wantCode, tt.wantMsg)
			}
			runs := h.records.RunsOf("default", "web")
			if got := len(runs) - before; got != map[bool]int{true: 1}[tt.wantRun] {
				t.Fatalf("%d runs queued, want run: %v", got, tt.wantRun)
			}
			if tt.wantRun {
				r := runs[0]
				if r.Id != a.Run || r.Commit != cmp.Or(tt.commit, commitA) || r.Branch != "feature/x" || r.Pusher != "ann" || r.State != berthv1.TriggerRunState_TRIGGER_RUN_STATE_QUEUED {
					t.Errorf("run = %v, answer %+v", r, a)
				}
			}
		})
	}
}

// At most MaxQueued runs of a trigger wait: the next push is answered 429
// and queues nothing.
func TestHooksBoundQueuedRuns(t *testing.T) {
	h := newRunnerHarness(t)
	h.records = NewRecords(h.st, nil, slog.New(slog.DiscardHandler))
	storetest.RunMirror(t, h.records.Triggers)
	storetest.RunMirror(t, h.records.Runs)
	trig := h.addTrigger("") // branch feature/x, secret "secret"
	hooks := &Hooks{Records: h.records, Store: h.st, KEK: h.kek, Log: slog.New(slog.DiscardHandler)}
	post := func(i int) *httptest.ResponseRecorder {
		body := fmt.Sprintf(`{"ref":"refs/heads/feature/x","after":"%040x"}`, i+1)
		req := httptest.NewRequest(http.MethodPost, HookPath("default", trig.Name), strings.NewReader(body))
		req.Header.Set(SignatureHeader, Sign([]byte("secret"), []byte(body)))
		rec := httptest.NewRecorder()
		hooks.ServeHTTP(rec, req)
		return rec
	}
	for i := range MaxQueued {
		if rec := post(i); rec.Code != http.StatusAccepted {
			t.Fatalf("push %d: %d %s, want 202", i, rec.Code, rec.Body)
		}
	}
	rec := post(MaxQueued)
	if rec.Code != http.StatusTooManyRequests || !strings.Contains(rec.Body.String(), "already wait to be built") {
		t.Fatalf("push past the bound: %d %s, want 429 saying runs wait", rec.Code, rec.Body)
	}
	if n := len(h.records.RunsOf("default", trig.Name)); n != MaxQueued {
		t.Fatalf("%d runs recorded, want %d", n, MaxQueued)
	}
}

func TestPrunableKeepsRunsBounded(t *testing.T) {
	var runs []*berthv1.TriggerRun
	for i := range KeepRuns + 3 {
		st := berthv1.TriggerRunState_TRIGGER_RUN_STATE_SUCCEEDED
		if i == KeepRuns+1 {
			st = berthv1.TriggerRunState_TRIGGER_RUN_STATE_BUILDING // never dropped while under way
		}
		runs = append(runs, &berthv1.TriggerRun{Id: string(rune('a' + i)), State: st})
	}
	got := prunable(runs)
	if len(got) != 3 || got[0].Id != runs[KeepRuns-1].Id {
		t.Fatalf("prunable dropped %d runs from %v, want the 3 oldest finished ones from index %d", len(got), got, KeepRuns-1)
	}
}

func TestHookTarget(t *testing.T) {
	for _, tt := range []struct{ path, ns, name string }{
		{"/hooks/web", "default", "web"},
		{"/hooks/team/web", "team", "web"},
	} {
		ns, name, ok := hookTarget(tt.path)
		if !ok || ns != tt.ns || name != tt.name {
			t.Errorf("hookTarget(%q) = %q, %q, %v", tt.path, ns, name, ok)
		}
		if HookPath(tt.ns, tt.name) != tt.path {
			t.Errorf("HookPath(%q, %q) = %q, want %q", tt.ns, tt.name, HookPath(tt.ns, tt.name), tt.path)
		}
	}
	for _, p := range []string{"/hooks/", "/hooks//web", "/hooks/a/b/c", "/other/web"} {
		if _, _, ok := hookTarget(p); ok {
			t.Errorf("hookTarget(%q) accepted it", p)
		}
	}
}
