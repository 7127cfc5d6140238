package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// chromiumBin is where Debian's chromium package, installed by
// hack/setup-host.sh, puts the browser.
const chromiumBin = "/usr/bin/chromium"

// dashboardCompose's sleeper ignores SIGTERM: a short grace period keeps
// the restart quick.
const dashboardCompose = `
services:
  sleeper:
    image: localhost/busybox:latest
    command: ["sleep", "3600"]
    stop_grace_period: 200ms
`

// TestWebDashboard signs in to the dashboard at /ui/ in headless Chromium
// with an API token, sees the service's task running, scales the service
// from the page, restarts it, and previews then applies a pasted Compose
// file.
func TestWebDashboard(t *testing.T) {
	if _, err := os.Stat(chromiumBin); err != nil {
		t.Skipf("no browser at %s (%v); run hack/setup-host.sh to install chromium", chromiumBin, err)
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c := newCluster(t, withServerArgs("--http-listen", httpAddr))
	c.startAgent("alpha")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", dashboardCompose), "-p", "web")
	c.waitRunning("web/sleeper", 1, 60*time.Second)
	token := strings.TrimSpace(c.mustBerth("token", "create", "web-e2e", "-q"))

	browser := newBrowser(t)
	ctx, cancel := context.WithTimeout(browser, 90*time.Second)
	defer cancel()
	var shot []byte
	signIn(t, ctx, httpAddr, token)
	err := chromedp.Run(ctx,
		chromedp.WaitVisible(`tr[data-task-service="web/sleeper"][data-task-state="running"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`tr[data-node="alpha"]`, chromedp.ByQuery),
		chromedp.CaptureScreenshot(&shot),
	)
	if err != nil {
		t.Fatalf("signing in and waiting for the running task on the dashboard: %v; page: %s", err, pageState(browser))
	}
	checkNotBlank(t, shot)

	// The value is typed in one step, as the input event a person's
	// typing fires: the table is drawn again on every task event, and
	// clearing the field and then typing let a redraw in between put the
	// old count back in front of the new digit ("21").
	err = chromedp.Run(ctx,
		chromedp.WaitVisible(`input[data-scale="web/sleeper"]`, chromedp.ByQuery),
		chromedp.Evaluate(`(() => {
			const input = document.querySelector('input[data-scale="web/sleeper"]');
			input.value = "2";
			input.dispatchEvent(new Event("input", { bubbles: true }));
		})()`, nil),
		chromedp.Click(`button[data-scale-button="web/sleeper"]`, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("scaling from the dashboard: %v", err)
	}
	c.waitRunning("web/sleeper", 2, 60*time.Second)
	err = chromedp.Run(ctx, chromedp.WaitVisible(`tr[data-service="web/sleeper"] td[data-running="2"]`, chromedp.ByQuery))
	if err != nil {
		t.Fatalf("waiting for the dashboard to show 2 running tasks: %v", err)
	}

	// Restart asks for confirmation, then replaces both tasks under a new
	// spec version.
	chromedp.ListenTarget(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			go chromedp.Run(ctx, page.HandleJavaScriptDialog(true))
		}
	})
	before := ids(c.waitRunning("web/sleeper", 2, 60*time.Second))
	if err := chromedp.Run(ctx, chromedp.Click(`button[data-restart="web/sleeper"]`, chromedp.ByQuery)); err != nil {
		t.Fatalf("restarting from the dashboard: %v", err)
	}
	eventually(t, 60*time.Second, func() (bool, string) {
		tasks := c.ps("web/sleeper")
		fresh := 0
		for _, tk := range tasks {
			if tk.State == "running" && tk.DesiredState == "running" && !before[tk.ID] {
				fresh++
			}
		}
		return fresh == 2, fmt.Sprintf("want 2 new running tasks after the restart, have %+v", tasks)
	})

	// A pasted Compose file is previewed (nothing changes), then applied.
	var changes string
	err = chromedp.Run(ctx,
		chromedp.SetValue("#apply-app", "pasted", chromedp.ByQuery),
		chromedp.SetValue("#apply-compose", dashboardCompose, chromedp.ByQuery),
		chromedp.Click("#apply-preview", chromedp.ByQuery),
		chromedp.WaitVisible("#apply-changes li.change-create", chromedp.ByQuery),
		chromedp.Text("#apply-changes", &changes, chromedp.ByQuery),
	)
	if err != nil || !strings.Contains(changes, "create sleeper") {
		t.Fatalf("previewing a Compose file on the dashboard: %q, %v; want the change \"create sleeper\"; page: %s", changes, err, pageState(browser))
	}
	if out := c.mustBerth("get", "apps"); strings.Contains(out, "pasted") {
		t.Fatalf("the preview applied the app:\n%s", out)
	}
	if err := chromedp.Run(ctx, chromedp.Click("#apply-run", chromedp.ByQuery)); err != nil {
		t.Fatalf("applying a Compose file on the dashboard: %v", err)
	}
	c.waitRunning("pasted/sleeper", 1, 60*time.Second)
}

// signIn loads the dashboard at httpAddr and signs in with token.
func signIn(t *testing.T, ctx context.Context, httpAddr, token string) {
	t.Helper()
	// Chromium drops a page load when the machine's network changes, as
	// it does when containers start: try the load again.
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if err = chromedp.Run(ctx, chromedp.Navigate("https://"+httpAddr+"/ui/")); err == nil || !strings.Contains(err.Error(), "ERR_NETWORK_CHANGED") {
			break
		}
	}
	if err != nil {
		t.Fatalf("loading the dashboard: %v", err)
	}
	err = chromedp.Run(ctx,
		chromedp.WaitVisible("#token", chromedp.ByQuery),
		// The button is enabled once the page's script handles the form.
		chromedp.WaitEnabled("#login-button", chromedp.ByQuery),
		chromedp.SendKeys("#token", token, chromedp.ByQuery),
		chromedp.Click("#login-button", chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("signing in to the dashboard: %v; page: %s", err, pageState(ctx))
	}
}

// newBrowser starts headless Chromium with a profile of its own, accepting
// the cluster's self-signed certificate, and stops it when the test ends.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	// Made before the browser starts, so removed after it has stopped.
	profile := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumBin),
		chromedp.UserDataDir(profile),
		// Tests run as root, where Chromium's sandbox cannot start.
		chromedp.NoSandbox,
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(1280, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		// Closing the browser gracefully and then waiting for its
		// process lets it finish writing its profile before it is removed.
		if err := chromedp.Cancel(ctx); err != nil {
			t.Logf("closing the browser: %v", err)
		}
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromiumBin, err)
	}
	return ctx
}

// checkNotBlank fails unless the PNG screenshot shows a rendered page:
// many distinct colours and a fair share of non-white pixels.
func checkNotBlank(t *testing.T, shot []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("decoding the screenshot: %v", err)
	}
	b := img.Bounds()
	colours := map[[4]uint32]bool{}
	nonWhite := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, bl, a}] = true
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				nonWhite++
			}
		}
	}
	total := b.Dx() * b.Dy()
	if len(colours) < 50 || nonWhite < total/20 {
		t.Fatalf("the screenshot looks blank: %dx%d, %d colours, %d of %d pixels not white", b.Dx(), b.Dy(), len(colours), nonWhite, total)
	}
}

// pageState is what the dashboard shows in its status line and message
// area, for failure messages.
func pageState(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var state string
	err := chromedp.Run(ctx, chromedp.Evaluate(`JSON.stringify({
		live: document.querySelector("#live").textContent,
		message: document.querySelector("#message").textContent,
		loginError: document.querySelector("#login-error").textContent,
		signedIn: !document.querySelector("#dashboard").hidden,
		tasks: document.querySelectorAll("tr[data-task-service]").length,
	})`, &state))
	if err != nil {
		return "unreadable: " + err.Error()
	}
	return state
}

// TestWebDashboardHonoursTheRole signs in with a viewer's token of one
// namespace: the page shows that namespace only, offers no action the role
// may not take, and explains a refused one.
func TestWebDashboardHonoursTheRole(t *testing.T) {
	if _, err := os.Stat(chromiumBin); err != nil {
		t.Skipf("no browser at %s (%v); run hack/setup-host.sh to install chromium", chromiumBin, err)
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c := newCluster(t, withServerArgs("--http-listen", httpAddr))
	c.startAgent("alpha")
	c.importImage()
	file := c.writeFile("compose.yaml", dashboardCompose)
	c.mustBerth("apply", "-f", file, "-p", "web", "-n", "team-a")
	c.mustBerth("apply", "-f", file, "-p", "hidden", "-n", "team-b")
	runningInTeamA := func() (bool, string) {
		tasks := c.ps("-n", "team-a", "web/sleeper")
		return len(tasks) == 1 && tasks[0].State == "running", fmt.Sprintf("want one running task of team-a's web/sleeper, have %+v", tasks)
	}
	eventually(t, 60*time.Second, runningInTeamA)
	token := strings.TrimSpace(c.mustBerth("token", "create", "watcher", "--role", "viewer", "--namespace", "team-a", "-q"))

	browser := newBrowser(t)
	ctx, cancel := context.WithTimeout(browser, 90*time.Second)
	defer cancel()
	var who, namespaces string
	var scaleDisabled, applyReadOnly, hiddenShown bool
	signIn(t, ctx, httpAddr, token)
	err := chromedp.Run(ctx,
		chromedp.WaitVisible(`tr[data-task-service="web/sleeper"][data-task-state="running"]`, chromedp.ByQuery),
		chromedp.Text("#whoami", &who, chromedp.ByQuery),
		chromedp.Evaluate(`[...document.querySelectorAll("#namespace option")].map((o) => o.value).join(",")`, &namespaces),
		chromedp.Evaluate(`document.querySelector('button[data-scale-button="web/sleeper"]').disabled`, &scaleDisabled),
		chromedp.Evaluate(`!document.querySelector("#apply-readonly").hidden && document.querySelector("#apply-preview").disabled`, &applyReadOnly),
		chromedp.Evaluate(`document.querySelectorAll('tr[data-task-service="hidden/sleeper"]').length > 0`, &hiddenShown),
	)
	if err != nil {
		t.Fatalf("signing in as a viewer: %v; page: %s", err, pageState(browser))
	}
	if !strings.Contains(who, "token/watcher") || !strings.Contains(who, "viewer") || !strings.Contains(who, "team-a") {
		t.Errorf("the page names its user %q; want token/watcher, a viewer in team-a", who)
	}
	if namespaces != "team-a" {
		t.Errorf("the namespace picker offers %q; want team-a alone", namespaces)
	}
	if !scaleDisabled || !applyReadOnly {
		t.Errorf("a viewer is offered changes: scale disabled %v, apply read-only %v", scaleDisabled, applyReadOnly)
	}
	if hiddenShown {
		t.Error("the page shows team-b's tasks to a viewer of team-a")
	}

	// The server decides in the end: a scale sent anyway is refused, and
	// the page says why.
	var message string
	err = chromedp.Run(ctx,
		chromedp.Evaluate(`act(() => call("ScaleService", { namespace: "team-a", app: "web", service: "sleeper", replicas: "2" }))`, nil),
		chromedp.WaitVisible(`#message`, chromedp.ByQuery),
		chromedp.Poll(`document.querySelector("#message").textContent.startsWith("Refused")`, nil, chromedp.WithPollingTimeout(30*time.Second)),
		chromedp.Text("#message", &message, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("sending a scale as a viewer: %v; page: %s", err, pageState(browser))
	}
	if !strings.Contains(message, "viewer") || !strings.Contains(message, "deployer") {
		t.Errorf("the refusal reads %q; want it to name the viewer role and the deployer role needed", message)
	}
	if ok, why := runningInTeamA(); !ok {
		t.Errorf("the refused scale changed the service: %s", why)
	}
}
