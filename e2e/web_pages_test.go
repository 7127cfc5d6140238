package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// dashboardPagesCompose runs a shell-able sleeper; its second version
// only changes an environment variable.
const dashboardPagesCompose = `
services:
  sleeper:
    image: localhost/busybox:latest
    command: ["sleep", "3600"]
    stop_grace_period: 200ms
    environment:
      STAGE: "%s"
    deploy:
      resources:
        reservations:
          cpus: "0.25"
          memory: 64M
`

// specVersion finds the version in `berth rollout status`.
var specVersion = regexp.MustCompile(`Spec version:\s+\d+,`)

// TestWebDashboardPages opens the dashboard on a deep link to a service
// of a real cluster: the header says connected, the page shows the
// rollout history with the change and reverts it, the node page shows
// its reservations, a terminal runs a shell in the task, and the header
// says reconnecting once the server stops. Screenshots go to
// $BERTH_SCREENSHOTS when set.
func TestWebDashboardPages(t *testing.T) {
	if _, err := os.Stat(chromiumBin); err != nil {
		t.Skipf("no browser at %s (%v); run hack/setup-host.sh to install chromium", chromiumBin, err)
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c := newCluster(t, withServerArgs("--http-listen", httpAddr))
	c.startAgent("alpha")
	c.importImage()
	file := c.writeFile("compose.yaml", fmt.Sprintf(dashboardPagesCompose, "one"))
	c.mustBerth("apply", "-f", file, "-p", "web")
	c.waitRunning("web/sleeper", 1, 60*time.Second)
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", fmt.Sprintf(dashboardPagesCompose, "two")), "-p", "web")
	eventually(t, 90*time.Second, func() (bool, string) {
		tasks := c.ps("web/sleeper")
		return len(tasks) == 1 && tasks[0].State == "running" && strings.HasSuffix(specVersion.FindString(c.mustBerth("rollout", "status", "web/sleeper")), " 2,"),
			fmt.Sprintf("want version 2 running, have %+v", tasks)
	})
	token := strings.TrimSpace(c.mustBerth("token", "create", "pages-e2e", "-q"))

	browser := newBrowser(t)
	chromedp.ListenTarget(browser, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			go chromedp.Run(browser, page.HandleJavaScriptDialog(true))
		}
	})
	ctx, cancel := context.WithTimeout(browser, 4*time.Minute)
	defer cancel()
	poll := func(what, expr string) {
		t.Helper()
		if err := chromedp.Run(ctx, chromedp.Poll(expr, nil, chromedp.WithPollingTimeout(90*time.Second))); err != nil {
			t.Fatalf("waiting for %s: %v; page: %s", what, err, pageState(browser))
		}
	}
	shoot := func(name string) {
		t.Helper()
		var shot []byte
		if err := chromedp.Run(ctx, chromedp.FullScreenshot(&shot, 100)); err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		checkNotBlank(t, shot)
		if dir := os.Getenv("BERTH_SCREENSHOTS"); dir != "" {
			if err := os.WriteFile(filepath.Join(dir, "e2e-"+name+".png"), shot, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	signInAt(t, ctx, httpAddr, "#/services/default/web/sleeper", token)
	// Signed in, with a running task on screen: connected.
	poll("the running task and the connected header", `document.querySelector('#svc-tasks tr[data-task-state="running"]') !== null &&
		document.querySelector("#live").getAttribute("data-state") === "connected"`)
	var history string
	if err := chromedp.Run(ctx, chromedp.Evaluate(`document.querySelector('#svc-history tr[data-version="2"]').textContent`, &history)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(history, "env[0]: STAGE=one → STAGE=two") {
		t.Errorf("version 2's history row reads %q, want the STAGE change", history)
	}
	shoot("service")

	// A terminal in the task: a shell computes what it prints, so the
	// marker is not an echo of what was typed.
	if err := chromedp.Run(ctx, clickJS(`#svc-actions a[data-exec]`)); err != nil {
		t.Fatal(err)
	}
	poll("the terminal to open", `document.querySelector("#exec-status").getAttribute("data-state") === "open"`)
	if err := chromedp.Run(ctx, chromedp.Focus(`#terminal .xterm-helper-textarea`, chromedp.ByQuery),
		input.InsertText("echo hi-$((6*7))-marker"), chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	poll("the shell's output in the terminal", `terminalText().includes("hi-42-marker")`)
	if n := strings.Count(c.server.out.String(), "msg=exec "); n != 1 {
		t.Errorf("the terminal made %d exec calls, want 1", n)
	}
	shoot("terminal")

	// The node: what its task reserves.
	if err := chromedp.Run(ctx, chromedp.Navigate("https://"+httpAddr+"/ui/#/nodes/alpha")); err != nil {
		t.Fatal(err)
	}
	poll("the node's reservations", `document.querySelector('#node-capacity [data-capacity="CPU"]') !== null &&
		document.querySelector('#node-capacity [data-capacity="CPU"]').getAttribute("data-allocated") === "250"`)
	shoot("node")

	// Back on the service by the task's link, revert to version 1: a
	// rollback makes version 3.
	if err := chromedp.Run(ctx, clickJS(`#node-tasks a[href="#/services/default/web/sleeper"]`)); err != nil {
		t.Fatal(err)
	}
	poll("the service page again", `document.querySelector('button[data-revert="1"]') !== null && !document.querySelector("#service-page").hidden`)
	if err := chromedp.Run(ctx, clickJS(`button[data-revert="1"]`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, func() (bool, string) {
		out := c.mustBerth("rollout", "status", "web/sleeper")
		return strings.Contains(specVersion.FindString(out), " 3,"), "want spec version 3 after the revert:\n" + out
	})
	poll("version 3 on the page", `document.querySelector('#svc-history tr[data-version="3"]') !== null`)

	// The server goes away: the header says so.
	c.server.stop()
	poll("the header to say reconnecting", `document.querySelector("#live").getAttribute("data-state") === "reconnecting"`)
}

// clickJS clicks the element sel finds in one step in the page: the
// page redraws live (task use every two seconds), and a click by chromedp
// finds the element first and clicks it in a later step.
func clickJS(sel string) chromedp.Action {
	return chromedp.Evaluate(fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) throw new Error("no element " + %q); e.click(); })()`, sel, sel), nil)
}

// signInAt loads the dashboard at the route hash and signs in with token.
func signInAt(t *testing.T, ctx context.Context, httpAddr, hash, token string) {
	t.Helper()
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if err = chromedp.Run(ctx, chromedp.Navigate("https://"+httpAddr+"/ui/"+hash)); err == nil || !strings.Contains(err.Error(), "ERR_NETWORK_CHANGED") {
			break
		}
	}
	if err != nil {
		t.Fatalf("loading the dashboard: %v", err)
	}
	err = chromedp.Run(ctx,
		chromedp.WaitVisible("#token", chromedp.ByQuery),
		chromedp.WaitEnabled("#login-button", chromedp.ByQuery),
		chromedp.SendKeys("#token", token, chromedp.ByQuery),
		chromedp.Click("#login-button", chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("signing in to the dashboard: %v; page: %s", err, pageState(ctx))
	}
}
