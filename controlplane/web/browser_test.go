package web

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/controlplane/httpapi"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// chromiumBin is where Debian's chromium package, installed by
// hack/setup-host.sh, puts the browser.
const chromiumBin = "/usr/bin/chromium"

// serveCluster serves the dashboard and the JSON API over the fake
// cluster, as the server's HTTPS listener does.
func serveCluster(t *testing.T, f *fakeCluster) *httptest.Server {
	t.Helper()
	api, err := httpapi.New(httpapi.Config{Client: f, Tokens: fakeTokens{good: "berth_good"}, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := New(Config{Tokens: fakeTokens{good: "berth_good"}, Log: slog.New(slog.DiscardHandler)})
	mux := http.NewServeMux()
	mux.Handle(Prefix, h)
	mux.Handle(strings.TrimSuffix(Prefix, "/"), h)
	mux.Handle("/", api)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv
}

// newBrowser starts headless Chromium with a profile of its own and stops
// it when the test ends.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumBin); err != nil {
		t.Skipf("no browser at %s (%v); run hack/setup-host.sh to install chromium", chromiumBin, err)
	}
	profile := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumBin),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox,
		chromedp.WindowSize(1280, 1000),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		if err := chromedp.Cancel(ctx); err != nil {
			t.Logf("closing the browser: %v", err)
		}
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromiumBin, err)
	}
	// Confirmation dialogs (revert) are accepted.
	chromedp.ListenTarget(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			go chromedp.Run(ctx, page.HandleJavaScriptDialog(true))
		}
	})
	return ctx
}

// screenshot saves the page as NAME.png in $BERTH_SCREENSHOTS, or in a
// temporary directory, and checks it shows a rendered page.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	var shot []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&shot, 100)); err != nil {
		t.Fatalf("screenshot of %s: %v", name, err)
	}
	dir := os.Getenv("BERTH_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("decoding the screenshot %s: %v", path, err)
	}
	colours := map[uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[r>>8<<16|g>>8<<8|bl>>8] = true
		}
	}
	if len(colours) < 20 {
		t.Fatalf("the screenshot %s looks blank: %d colours", path, len(colours))
	}
	t.Logf("screenshot: %s", path)
}

// pollTimeout bounds each wait for the page: the machine is shared.
const pollTimeout = 60 * time.Second

// clickJS clicks the element sel finds in one step in the page: the
// page redraws live, and a click by chromedp finds the element first and
// clicks it in a later step.
func clickJS(sel string) chromedp.Action {
	return chromedp.Evaluate(fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) throw new Error("no element " + %q); e.click(); })()`, sel, sel), nil)
}

func waitJS(ctx context.Context, expr string) error {
	return chromedp.Run(ctx, chromedp.Poll(expr, nil, chromedp.WithPollingTimeout(pollTimeout)))
}

// pageState is what the page shows in its status line and message areas,
// for failure messages.
func pageState(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var s string
	if err := chromedp.Run(ctx, chromedp.Evaluate(`JSON.stringify({hash: location.hash, live: document.querySelector("#live").textContent,
		message: document.querySelector("#message").textContent, login: document.querySelector("#login-error").textContent})`, &s)); err != nil {
		return "unreadable: " + err.Error()
	}
	return s
}

func signIn(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	err := chromedp.Run(ctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible("#token", chromedp.ByQuery),
		chromedp.WaitEnabled("#login-button", chromedp.ByQuery),
		chromedp.SendKeys("#token", "berth_good", chromedp.ByQuery),
		chromedp.Click("#login-button", chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("signing in at %s: %v; page: %s", url, err, pageState(ctx))
	}
}

// TestDashboardTenThousandTasks signs in to a cluster of 10,000 tasks on
// the task list: the page draws one page of rows, and the filter box
// narrows them. The times are printed, not asserted.
func TestDashboardTenThousandTasks(t *testing.T) {
	f := newFakeCluster()
	srv := serveCluster(t, f)
	ctx := newBrowser(t)
	start := time.Now()
	signIn(t, ctx, srv.URL+"/ui/#/tasks")
	total := len(f.tasks)
	// Listing 10,000 tasks takes long under the race detector.
	err := chromedp.Run(ctx, chromedp.Poll(fmt.Sprintf(`document.querySelector('[data-pager="tasks"] span[data-total="%d"]') !== null`, total),
		nil, chromedp.WithPollingTimeout(4*time.Minute)))
	if err != nil {
		t.Fatalf("waiting for the list of %d tasks: %v; page: %s", total, err, pageState(ctx))
	}
	shown := time.Since(start)
	var rows int
	var renderMs float64
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(`document.querySelectorAll('[data-list="tasks"] tr').length`, &rows),
		chromedp.Evaluate(`lastRenderMs`, &renderMs)); err != nil {
		t.Fatal(err)
	}
	if rows != 50 {
		t.Fatalf("the task list drew %d rows of %d tasks, want a page of 50", rows, total)
	}

	// svc-07.12 is slot 12 and slots 120 to 129 of big/svc-07.
	start = time.Now()
	if err := chromedp.Run(ctx, chromedp.SendKeys(`input[data-filter="tasks"]`, "svc-07.12", chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	if err := waitJS(ctx, `document.querySelector('[data-pager="tasks"] span[data-shown="11"]') !== null && document.querySelectorAll('[data-list="tasks"] tr').length === 11`); err != nil {
		t.Fatalf("waiting for the filter to keep 11 tasks: %v; page: %s", err, pageState(ctx))
	}
	filtered := time.Since(start)
	var filterMs float64
	var hash string
	if err := chromedp.Run(ctx, chromedp.Evaluate(`lastRenderMs`, &filterMs), chromedp.Evaluate(`location.hash`, &hash)); err != nil {
		t.Fatal(err)
	}
	if hash != "#/tasks?q=svc-07.12" {
		t.Errorf("the URL keeps the filter as %q, want #/tasks?q=svc-07.12", hash)
	}
	screenshot(t, ctx, "tasks-filtered")

	fmt.Printf("dashboard, %d tasks: sign-in to first page %v (render %.1f ms); filter to 11 rows %v (render %.1f ms)\n",
		total, shown.Round(time.Millisecond), renderMs, filtered.Round(time.Millisecond), filterMs)

	// The filtered list is a link: reloading it shows the same rows.
	if err := chromedp.Run(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	if err := waitJS(ctx, `document.querySelectorAll('[data-list="tasks"] tr').length === 11 && document.querySelector('input[data-filter="tasks"]').value === "svc-07.12"`); err != nil {
		t.Fatalf("reloading the filtered list: %v; page: %s", err, pageState(ctx))
	}

	// The nodes' filter: node-10 to node-19.
	if err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/ui/#/nodes?q=node-1")); err != nil {
		t.Fatal(err)
	}
	if err := waitJS(ctx, `document.querySelectorAll('[data-list="nodes"] tr').length === 10 && document.querySelector('[data-list="tasks"]').closest("section").hidden`); err != nil {
		t.Fatalf("waiting for the nodes list filtered by its link: %v; page: %s", err, pageState(ctx))
	}
}

// TestDashboardPages walks the pages of one service, one node, the images
// and a terminal, each by its deep link, then watches the header say the
// truth when the server goes away.
func TestDashboardPages(t *testing.T) {
	f := newFakeCluster()
	srv := serveCluster(t, f)
	ctx := newBrowser(t)
	signIn(t, ctx, srv.URL+"/ui/#/services/default/shop/web")

	// The header tells the connection as it is: both streams are open,
	// quiet as they are.
	if err := waitJS(ctx, `document.querySelector("#live").getAttribute("data-state") === "connected"`); err != nil {
		t.Fatalf("waiting for the header to say connected: %v; page: %s", err, pageState(ctx))
	}

	// The service: its tasks with live use, its history with the diff,
	// its spec and network.
	err := waitJS(ctx, `document.querySelectorAll('[data-list="service-tasks"] tr').length === 2 &&
		document.querySelector('#svc-tasks td[data-cpu="12.5"]') !== null &&
		document.querySelector('#svc-events li[data-event="service update"]') !== null`)
	if err != nil {
		t.Fatalf("waiting for the service page: %v; page: %s", err, pageState(ctx))
	}
	// Read in one step: the page is drawn again with every Top answer.
	var texts map[string]string
	if err := chromedp.Run(ctx, chromedp.Evaluate(`({
		history: document.querySelector('#svc-history tr[data-version="2"]').textContent,
		spec: document.querySelector("#svc-spec").textContent,
		networks: document.querySelector('#svc-summary dd[data-field="networks"]').textContent,
		row: document.querySelector("#svc-tasks tbody tr").textContent,
	})`, &texts)); err != nil {
		t.Fatal(err)
	}
	history, spec, networks, net := texts["history"], texts["spec"], texts["networks"], texts["row"]
	if !strings.Contains(history, "image: localhost/shop:1 → localhost/shop:2") {
		t.Errorf("version 2's row reads %q, want the image change from version 1", history)
	}
	if !strings.Contains(spec, "image: localhost/shop:2") || !strings.Contains(spec, "- serve") {
		t.Errorf("the spec reads %q, want its image and command as YAML", spec)
	}
	if !strings.Contains(networks, "VIP 10.20.0.2") || !strings.Contains(networks, "10.20.0.11") {
		t.Errorf("the networks read %q, want the VIP and the endpoints", networks)
	}
	if !strings.Contains(net, "↓2.0 KiB/s ↑512 B/s") || !strings.Contains(net, "64 MiB / 512 MiB") {
		t.Errorf("a task row reads %q, want its memory and network rates", net)
	}
	screenshot(t, ctx, "service")

	// A hidden tab stops asking for live use; shown again, it asks again.
	var polling []bool
	if err := chromedp.Run(ctx, chromedp.Evaluate(`(() => {
		const seen = [statsTimer !== null];
		Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
		document.dispatchEvent(new Event("visibilitychange"));
		seen.push(statsTimer !== null);
		Object.defineProperty(document, "hidden", { configurable: true, get: () => false });
		document.dispatchEvent(new Event("visibilitychange"));
		seen.push(statsTimer !== null);
		return seen;
	})()`, &polling)); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(polling) != "[true false true]" {
		t.Errorf("polling Top when shown, hidden, shown again: %v, want [true false true]", polling)
	}

	// Revert asks, then calls the rollback of `berth rollout undo`.
	if err := chromedp.Run(ctx, clickJS(`button[data-revert="1"]`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(pollTimeout)
	for {
		f.mu.Lock()
		n := len(f.rollbacks)
		var got string
		if n > 0 {
			r := f.rollbacks[0]
			got = fmt.Sprintf("%s/%s/%s@%d", r.GetNamespace(), r.GetApp(), r.GetService(), r.GetToVersion())
		}
		f.mu.Unlock()
		if n > 0 {
			if got != "default/shop/web@1" {
				t.Fatalf("revert asked for %s, want default/shop/web@1", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revert made no rollback call; page: %s", pageState(ctx))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A node, by its link; back returns to the service.
	if err := chromedp.Run(ctx, clickJS(`#svc-tasks a[href="#/nodes/alpha"]`)); err != nil {
		t.Fatal(err)
	}
	if err := waitJS(ctx, `location.hash === "#/nodes/alpha" && document.querySelector('#node-capacity [data-capacity="CPU"]') !== null &&
		document.querySelectorAll('[data-list="node-tasks"] tr').length === 2`); err != nil {
		t.Fatalf("waiting for the node page: %v; page: %s", err, pageState(ctx))
	}
	var cpu, memory string
	if err := chromedp.Run(ctx,
		chromedp.Evaluate(`document.querySelector('#node-capacity [data-capacity="CPU"]').getAttribute("data-allocated")`, &cpu),
		chromedp.Evaluate(`document.querySelector('#node-capacity [data-capacity="Memory"]').getAttribute("data-allocated")`, &memory),
	); err != nil {
		t.Fatal(err)
	}
	if cpu != "500" || memory != fmt.Sprint(512<<20) {
		t.Errorf("alpha's allocation reads CPU %s, memory %s; want the two tasks' 500m and 512 MiB", cpu, memory)
	}
	if err := waitJS(ctx, `document.querySelector('#node-tasks td[data-cpu="12.5"]') !== null`); err != nil {
		t.Fatalf("waiting for the node's tasks' use: %v", err)
	}
	screenshot(t, ctx, "node")
	if err := chromedp.Run(ctx, chromedp.NavigateBack()); err != nil {
		t.Fatal(err)
	}
	if err := waitJS(ctx, `location.hash === "#/services/default/shop/web" && !document.querySelector("#service-page").hidden`); err != nil {
		t.Fatalf("going back to the service: %v; page: %s", err, pageState(ctx))
	}

	// Images: each node's, with findings, signature and registries.
	if err := chromedp.Run(ctx, chromedp.Click(`#nav a[href="#/images"]`, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	if err := waitJS(ctx, `document.querySelector('tr[data-image="localhost/shop:2"] td[data-findings="3"]') !== null &&
		document.querySelector('tr[data-image="localhost/shop:2"] td[data-signature="signed"]') !== null &&
		document.querySelector('tr[data-registry="registry.example:5000"]') !== null`); err != nil {
		t.Fatalf("waiting for the images page: %v; page: %s", err, pageState(ctx))
	}
	screenshot(t, ctx, "images")

	// A terminal: what is typed goes over the WebSocket to Exec, and what
	// comes back is drawn.
	if err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/ui/#/services/default/shop/web"),
		chromedp.WaitVisible(`#svc-actions a[data-exec="task-web-1"]`, chromedp.ByQuery), clickJS(`#svc-actions a[data-exec="task-web-1"]`)); err != nil {
		t.Fatal(err)
	}
	if err := waitJS(ctx, `document.querySelector("#exec-status").getAttribute("data-state") === "open"`); err != nil {
		t.Fatalf("waiting for the terminal to open: %v; page: %s", err, pageState(ctx))
	}
	// Typed as one insertion: key events for each character reach xterm
	// twice (as a key and as input) under the browser's automation.
	if err := chromedp.Run(ctx, chromedp.Focus(`#terminal .xterm-helper-textarea`, chromedp.ByQuery), input.InsertText("echo hi-browser-marker")); err != nil {
		t.Fatal(err)
	}
	if err := waitJS(ctx, `terminalText().includes("echo hi-browser-marker")`); err != nil {
		var text string
		chromedp.Run(ctx, chromedp.Evaluate(`terminalText()`, &text))
		t.Fatalf("waiting for the echo in the terminal: %v; it shows %q", err, text)
	}
	screenshot(t, ctx, "terminal")
	f.mu.Lock()
	execs := f.execs
	f.mu.Unlock()
	if execs != 1 {
		t.Errorf("the terminal made %d Exec calls, want 1", execs)
	}

	// The overview, with everything at a glance.
	if err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/ui/#/")); err != nil {
		t.Fatal(err)
	}
	if err := waitJS(ctx, `document.querySelector('tr[data-service="big/svc-00"]') !== null && document.querySelector('[data-list="tasks"] td[data-cpu]') !== null`); err != nil {
		t.Fatalf("waiting for the overview: %v; page: %s", err, pageState(ctx))
	}
	screenshot(t, ctx, "overview")

	// The server goes away: the header says so, and tries again.
	srv.CloseClientConnections()
	srv.Close()
	if err := waitJS(ctx, `document.querySelector("#live").getAttribute("data-state") === "reconnecting"`); err != nil {
		t.Fatalf("waiting for the header to say reconnecting once the server stopped: %v; page: %s", err, pageState(ctx))
	}
}
