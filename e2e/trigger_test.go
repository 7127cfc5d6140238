package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/berthproject/berth/api/clientconfig"
)

// triggerCompose is the service a trigger rolls out: a replica on each
// of two machines.
const triggerCompose = `
services:
  web:
    image: localhost/busybox:latest
    # Ends at once on SIGTERM, so a rollout waits out no grace period.
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1 & wait; done"]
    # No overlay: it serves nothing, and the machines share one host.
    network_mode: host
    deploy:
      replicas: 2
      placement:
        max_replicas_per_node: 1
      update_config:
        parallelism: 1
        monitor: 100ms
`

// siteDockerfile is the repository's image, version v.
func siteDockerfile(v string) string {
	return "FROM localhost/busybox:latest\nRUN echo " + v + " > /version\nCMD [\"sleep\", \"3600\"]\n"
}

// triggerFixture is a 2-machine cluster with an HTTP API, a registry and
// a git repository, running service tr/web, with trigger web on the
// repository's main branch (its site/ directory).
type triggerFixture struct {
	c        *cluster
	reg      *testRegistry
	repo     *gitRepo
	base     string // https://127.0.0.1:port of the HTTP API
	http     *http.Client
	withCert *http.Client
	secret   string
	image    string // the trigger's REGISTRY/REPOSITORY
}

func newTriggerFixture(t testing.TB) *triggerFixture {
	t.Helper()
	reg := startRegistry(t, "", "")
	repo := startGitRepo(t)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c := newCluster(t, withServerArgs("--http-listen", httpAddr))
	c.startMachine("alpha")
	c.startMachine("beta")
	c.importImage()
	c.mustBerth("cluster", "settings", "--insecure-registry", reg.host, "--allow-host-namespaces")
	c.mustBerth("apply", "-f", c.writeFile("tr/compose.yaml", triggerCompose), "-p", "tr")
	c.waitRunning("tr/web", 2, 2*time.Minute)
	// What the trigger pushes must be signed: a policy trusts the key the
	// trigger signs with, and the nodes verify before they start.
	if out, err := c.berthIn(t.TempDir(), "key", "generate", "release"); err != nil {
		t.Fatalf("berth key generate release: %v\n%s", err, out)
	}
	c.mustBerth("trust", "set", reg.host+"/team/*", "--key", "release")

	f := &triggerFixture{c: c, reg: reg, repo: repo, base: "https://" + httpAddr, image: reg.host + "/team/web"}
	f.http, f.withCert = httpClients(t, c.configPath)
	f.createTrigger(t, "tr/web", "--sign", "release")
	return f
}

// httpClients are clients of the cluster's HTTP API: without a
// certificate of the cluster (as a git host calls it), and with the
// admin's.
func httpClients(t testing.TB, configPath string) (noCert, withCert *http.Client) {
	t.Helper()
	cfg, err := clientconfig.Load(configPath)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(cfg.CA)) {
		t.Fatalf("no CA certificate in %s", configPath)
	}
	adminCert, err := tls.X509KeyPair([]byte(cfg.Certificate), []byte(cfg.Key))
	if err != nil {
		t.Fatal(err)
	}
	noCert = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	withCert = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{adminCert}}}}
	t.Cleanup(noCert.CloseIdleConnections)
	t.Cleanup(withCert.CloseIdleConnections)
	return noCert, withCert
}

// createTrigger makes trigger web on the repository's main branch (its
// site/ directory), rolling out service, with the extra flags of
// trigger create (like --sign KEY), and keeps its secret.
func (f *triggerFixture) createTrigger(t testing.TB, service string, extra ...string) {
	t.Helper()
	out := f.c.mustBerth(append([]string{"trigger", "create", "web", "--git", f.repo.url, "--branch", "main", "--path", "site",
		"--image", f.image, "--service", service}, extra...)...)
	m := regexp.MustCompile(`(?m)^webhook secret: ([0-9a-f]{64})$`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "webhook path:   /hooks/web") {
		t.Fatalf("trigger create printed no webhook path and secret:\n%s", out)
	}
	f.secret = m[1]
}

// pushEvent is GitHub's push event body for commit on branch.
func pushEvent(branch, commit string) []byte {
	return []byte(fmt.Sprintf(`{"ref":"refs/heads/%s","before":"0000000000000000000000000000000000000000","after":"%s","pusher":{"name":"e2e"},"repository":{"full_name":"team/site"}}`, branch, commit))
}

// postHook sends body to /hooks/web with the signature sig (none when
// empty) as GitHub does, and returns the status and answer.
func (f *triggerFixture) postHook(t testing.TB, body []byte, sig string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.base+"/hooks/web", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", "e2e")
	if sig != "" {
		req.Header.Set("X-Hub-Signature-256", sig)
	}
	resp, err := f.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(answer)
}

// sign is GitHub's X-Hub-Signature-256 of body under secret.
func sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// triggerRun is one row of `berth trigger runs -o json`.
type triggerRun struct {
	ID      string   `json:"id"`
	Commit  string   `json:"commit"`
	State   string   `json:"state"`
	Message string   `json:"message"`
	Image   string   `json:"image"`
	Steps   []string `json:"steps"`
}

func (f *triggerFixture) runs(t testing.TB) []triggerRun {
	t.Helper()
	var runs []triggerRun
	out := f.c.mustBerth("trigger", "runs", "web", "-o", "json")
	if err := json.Unmarshal([]byte(out), &runs); err != nil {
		t.Fatalf("trigger runs -o json: %v\n%s", err, out)
	}
	return runs
}

// waitRun waits until run id has ended and returns it.
func (f *triggerFixture) waitRun(t testing.TB, id string, timeout time.Duration) triggerRun {
	t.Helper()
	var run triggerRun
	eventually(t, timeout, func() (bool, string) {
		for _, r := range f.runs(t) {
			if r.ID == id {
				run = r
				return r.State == "succeeded" || r.State == "failed", fmt.Sprintf("run %s is %s: %s", id, r.State, r.Message)
			}
		}
		return false, "no run " + id
	})
	return run
}

// tasksDigests returns the image digest of each running task of tr/web,
// by node id, as the cluster API answers.
func (f *triggerFixture) tasksDigests(t testing.TB) map[string]string {
	t.Helper()
	resp, err := f.withCert.Post(f.base+"/berth.v1.ClusterService/ListTasks", "application/json", strings.NewReader(`{"app":"tr","service":"web"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Tasks []struct {
			NodeID string `json:"nodeId"`
			Spec   struct {
				ImageDigest string `json:"imageDigest"`
			} `json:"spec"`
		} `json:"tasks"`
	}
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &list); err != nil || resp.StatusCode != 200 {
		t.Fatalf("ListTasks: %d %v\n%s", resp.StatusCode, err, body)
	}
	out := map[string]string{}
	for _, tk := range list.Tasks {
		out[tk.NodeID] = tk.Spec.ImageDigest
	}
	return out
}

// waitDigestOnBothNodes waits until tr/web runs one task on each machine,
// both of digest.
func (f *triggerFixture) waitDigestOnBothNodes(t testing.TB, digest string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, func() (bool, string) {
		tasks := f.c.ps("tr/web")
		digests := f.tasksDigests(t)
		nodes := map[string]bool{}
		for _, tk := range tasks {
			if tk.State != "running" || tk.DesiredState != "running" {
				return false, fmt.Sprintf("tr/web: %+v", tasks)
			}
			nodes[tk.Node] = true
		}
		if len(tasks) != 2 || !nodes["alpha"] || !nodes["beta"] {
			return false, fmt.Sprintf("tr/web does not run once on each machine: %+v", tasks)
		}
		for node, d := range digests {
			if d != digest {
				return false, fmt.Sprintf("a task on node %s runs %s, want %s", node, d, digest)
			}
		}
		return len(digests) == 2, fmt.Sprintf("digests by node: %v", digests)
	})
}

// TestTrigger drives a build trigger as a git host would: a push signed
// with the trigger's secret builds the commit from the git daemon, pushes
// it to the registry and rolls tr/web out to its digest on both machines;
// a bad signature is refused with nothing built; a push of another
// branch is ignored; a commit whose Dockerfile fails leaves the running
// version alone, with the failure in `berth trigger runs`.
func TestTrigger(t *testing.T) {
	f := newTriggerFixture(t)
	c := f.c
	// The webhook secret is sealed at rest and never logged: neither the
	// store's files nor the server's output hold it.
	if where := filesHolding(t, filepath.Join(c.dir, "server"), f.secret); len(where) > 0 {
		t.Errorf("the webhook secret is stored in the clear in %v", where)
	}
	// The search does see what the trigger stored in the clear.
	if where := filesHolding(t, filepath.Join(c.dir, "server"), f.repo.url); len(where) == 0 {
		t.Errorf("the store's files do not hold the trigger's URL %s: the search for the secret proves nothing", f.repo.url)
	}
	if strings.Contains(c.server.out.String(), f.secret) {
		t.Error("the server logged the webhook secret")
	}
	v1 := f.repo.commit(map[string]string{"site/Dockerfile": siteDockerfile("v1"), "README": "site\n"}, "v1")

	// Refused: no signature, a wrong one, one of another body.
	body := pushEvent("main", v1)
	for name, sig := range map[string]string{
		"missing":      "",
		"wrong secret": sign("not-the-secret", body),
		"other body":   sign(f.secret, pushEvent("main", strings.Repeat("b", 40))),
		"truncated":    sign(f.secret, body)[:40],
	} {
		if code, answer := f.postHook(t, body, sig); code != http.StatusUnauthorized {
			t.Fatalf("webhook with a %s signature: %d %s, want 401", name, code, answer)
		}
	}
	// Ignored, and said so: another branch.
	other := pushEvent("dev", v1)
	if code, answer := f.postHook(t, other, sign(f.secret, other)); code != http.StatusOK || !strings.Contains(answer, "push to branch dev ignored") {
		t.Fatalf("push to another branch: %d %s", code, answer)
	}
	if runs := f.runs(t); len(runs) != 0 {
		t.Fatalf("refused and ignored webhooks made runs: %+v", runs)
	}

	// Built, pushed and rolled out.
	code, answer := f.postHook(t, body, sign(f.secret, body))
	if code != http.StatusAccepted {
		t.Fatalf("signed push: %d %s, want 202", code, answer)
	}
	var queued struct{ Run string }
	if err := json.Unmarshal([]byte(answer), &queued); err != nil || queued.Run == "" {
		t.Fatalf("signed push answered %s", answer)
	}
	run := f.waitRun(t, queued.Run, 4*time.Minute)
	if run.State != "succeeded" || run.Commit != v1 || !strings.HasPrefix(run.Image, f.image+"@sha256:") {
		logs, _, _ := c.berth("trigger", "logs", run.ID)
		t.Fatalf("run %+v, want succeeded with %s@sha256:...\n%s", run, f.image, logs)
	}
	digest := strings.TrimPrefix(run.Image, f.image+"@")
	f.waitDigestOnBothNodes(t, digest, 2*time.Minute)
	if !containsStep(run.Steps, "scan: passed") || !containsStep(run.Steps, "sign: signed with key release") {
		t.Errorf("steps %q do not say the image was scanned and signed", run.Steps)
	}
	// The registry holds both tags of the build.
	for _, tag := range []string{v1, "main"} {
		out, err := exec.Command("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
			"Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json",
			"http://"+f.reg.host+"/v2/team/web/manifests/"+tag).Output()
		if err != nil || strings.TrimSpace(string(out)) != "200" {
			t.Errorf("registry has no tag %s of team/web: %s %v", tag, out, err)
		}
	}
	logs := c.mustBerth("trigger", "logs", run.ID)
	for _, want := range []string{"RUN echo v1 > /version", "==> succeeded"} {
		if !strings.Contains(logs, want) {
			t.Errorf("run log lacks %q:\n%s", want, logs)
		}
	}
	if out := c.mustBerth("trigger", "ls"); !strings.Contains(out, "/hooks/web") || !strings.Contains(out, run.ID+" succeeded") {
		t.Errorf("trigger ls:\n%s", out)
	}

	// A broken commit: the run fails, tr/web keeps running v1.
	broken := f.repo.commit(map[string]string{"site/Dockerfile": "FROM localhost/busybox:latest\nRUN exit 3\n"}, "broken")
	body = pushEvent("main", broken)
	code, answer = f.postHook(t, body, sign(f.secret, body))
	if code != http.StatusAccepted || json.Unmarshal([]byte(answer), &queued) != nil {
		t.Fatalf("signed push of the broken commit: %d %s", code, answer)
	}
	failed := f.waitRun(t, queued.Run, 4*time.Minute)
	if failed.State != "failed" || !strings.Contains(failed.Message, "build failed") || !strings.Contains(failed.Message, "still runs what it ran") {
		t.Fatalf("run of the broken commit: %+v, want failed in its build", failed)
	}
	if out := c.mustBerth("trigger", "runs", "web"); !strings.Contains(out, failed.ID) || !strings.Contains(out, "build failed") {
		t.Errorf("trigger runs does not show the failure:\n%s", out)
	}
	f.waitDigestOnBothNodes(t, digest, 30*time.Second)
	f.checkDashboard(t, run.ID, failed.ID)

	// A commit that builds but cannot run: the rollout pauses (the
	// default failure action), and the run fails saying so.
	noShell := f.repo.commit(map[string]string{"site/Dockerfile": "FROM localhost/busybox:latest\nRUN rm /bin/sh\n"}, "no shell")
	body = pushEvent("main", noShell)
	code, answer = f.postHook(t, body, sign(f.secret, body))
	if code != http.StatusAccepted || json.Unmarshal([]byte(answer), &queued) != nil {
		t.Fatalf("signed push of the commit without a shell: %d %s", code, answer)
	}
	paused := f.waitRun(t, queued.Run, 4*time.Minute)
	if paused.State != "failed" || !strings.Contains(paused.Message, "rollout failed") || !strings.Contains(paused.Message, "paused") {
		t.Fatalf("run of a commit that cannot run: %+v, want failed in its rollout", paused)
	}

	c.mustBerth("trigger", "rm", "web")
	if code, answer := f.postHook(t, body, sign(f.secret, body)); code != http.StatusNotFound {
		t.Errorf("webhook of a removed trigger: %d %s, want 404", code, answer)
	}
	c.mustBerth("delete", "tr")
}

func containsStep(steps []string, want string) bool {
	for _, s := range steps {
		if s == want {
			return true
		}
	}
	return false
}

// TestTriggerRefusesBadInput: a trigger for a service that does not
// exist, or with a malformed URL or image, is refused naming the field,
// and nothing is stored.
func TestTriggerRefusesBadInput(t *testing.T) {
	c := newCluster(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--git", "git://127.0.0.1:1/repo", "--branch", "main", "--image", "127.0.0.1:5000/web", "--service", "nope/web"}, "service nope/web not found"},
		{[]string{"--git", "https://example.invalid/page", "--branch", "main", "--image", "127.0.0.1:5000/web", "--service", "nope/web"}, "git"},
		{[]string{"--git", "git://127.0.0.1:1/repo", "--branch", "main", "--image", "127.0.0.1:5000/web:1", "--service", "nope/web"}, "has a tag or digest"},
		{[]string{"--git", "git://127.0.0.1:1/repo", "--branch", "main", "--image", "127.0.0.1:5000/web", "--service", "nope/web", "--sign", "nokey"}, `key "nokey" not found`},
	} {
		_, errOut, err := c.berth(append([]string{"trigger", "create", "web"}, tc.args...)...)
		if err == nil || !strings.Contains(errOut, tc.want) {
			t.Errorf("trigger create %v: %v %s, want a refusal saying %q", tc.args, err, errOut, tc.want)
		}
	}
	if out := c.mustBerth("trigger", "ls", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("refused triggers were stored: %s", out)
	}
}

// TestBuildFromGit builds an image straight from a git URL: the node's
// BuildKit fetches the repository at a commit, in a subdirectory.
func TestBuildFromGit(t *testing.T) {
	repo := startGitRepo(t)
	c := newCluster(t)
	c.startMachine("alpha")
	c.importImage()
	commit := repo.commit(map[string]string{"site/Dockerfile": siteDockerfile("from-git")}, "v1")
	url := repo.url + "#" + commit + ":site"
	out, errOut, err := c.berth("build", "-t", "localhost/fromgit:1", "--progress", "plain", url)
	if err != nil {
		t.Fatalf("berth build %s: %v\n%s\n%s", url, err, out, errOut)
	}
	if !regexp.MustCompile(`^built localhost/fromgit:1@sha256:[0-9a-f]{64} on node alpha; scanned: no findings\n$`).MatchString(out) {
		t.Fatalf("berth build printed %q", out)
	}
	if !strings.Contains(errOut, "RUN echo from-git > /version") {
		t.Errorf("the progress does not show the repository's Dockerfile:\n%s", errOut)
	}
	// A Compose service builds from the same URL.
	compose := c.writeFile("git/compose.yaml", fmt.Sprintf(`name: fromgit
services:
  web:
    image: localhost/fromgit-compose:1
    build: %q
    command: ["sh", "-c", "cat /version; trap 'exit 0' TERM; while true; do sleep 1 & wait; done"]
`, url))
	c.mustBerth("apply", "-f", compose, "--progress", "plain")
	c.waitRunning("fromgit/web", 1, 2*time.Minute)
	eventually(t, 30*time.Second, func() (bool, string) {
		logs, _, err := c.berth("logs", "fromgit/web")
		return err == nil && strings.Contains(logs, "from-git"), "logs of fromgit/web: " + logs
	})
	c.mustBerth("delete", "fromgit")
	// A ref the repository does not have fails, naming it.
	_, errOut, err = c.berth("build", "-t", "localhost/fromgit:2", "--progress", "plain", repo.url+"#no-such-branch")
	if err == nil || !strings.Contains(errOut, "no-such-branch") {
		t.Fatalf("build of a missing ref: %v\n%s", err, errOut)
	}
}

// TestTriggerRunInterruptedByFailover kills the leading server while it
// runs a trigger's build: the next leader marks the run failed, saying it
// was interrupted, rather than leaving it under way for ever.
func TestTriggerRunInterruptedByFailover(t *testing.T) {
	repo := startGitRepo(t)
	endpoints := startEtcdCluster(t)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	// The first server serves the HTTP API; the second does not (a port
	// is one server's).
	c := newCluster(t, withEtcd(endpoints), withServerArgs("--leader-lease", "1s", "--http-listen", httpAddr))
	h := &haCluster{cluster: c, servers: map[string]*proc{c.addr: c.server}}
	h.serverArgs = []string{"--etcd-endpoints", endpoints, "--leader-lease", "1s"}
	h.addServer()
	h.knowServers()
	h.startMachine("alpha")
	h.importImage()
	h.mustBerth("apply", "-f", h.writeFile("tr/compose.yaml", "services:\n  web:\n    image: localhost/busybox:latest\n    command: [\"sleep\", \"3600\"]\n"), "-p", "tr")
	// The build never gets to a push: no registry is needed.
	f := &triggerFixture{c: c, repo: repo, base: "https://" + httpAddr, image: "127.0.0.1:1/team/web"}
	f.http, f.withCert = httpClients(t, c.configPath)
	f.createTrigger(t, "tr/web")

	slow := repo.commit(map[string]string{"site/Dockerfile": "FROM localhost/busybox:latest\nRUN sleep 60\n"}, "slow")
	body := pushEvent("main", slow)
	code, answer := f.postHook(t, body, sign(f.secret, body))
	var queued struct{ Run string }
	if code != http.StatusAccepted || json.Unmarshal([]byte(answer), &queued) != nil {
		t.Fatalf("signed push: %d %s", code, answer)
	}
	eventually(t, time.Minute, func() (bool, string) {
		for _, r := range f.runs(t) {
			if r.ID == queued.Run {
				return r.State == "building", fmt.Sprintf("run %s is %s", r.ID, r.State)
			}
		}
		return false, "no run " + queued.Run
	})
	h.killLeader()
	run := f.waitRun(t, queued.Run, time.Minute)
	if run.State != "failed" || !strings.Contains(run.Message, "interrupted while building") {
		t.Fatalf("run under way when its leader died: %+v, want failed as interrupted", run)
	}
}

// checkDashboard signs in to the dashboard with a viewer's token and
// finds the runs listed with their states, and the failed run's log.
func (f *triggerFixture) checkDashboard(t *testing.T, okRun, failedRun string) {
	t.Helper()
	if _, err := os.Stat(chromiumBin); err != nil {
		t.Logf("no browser at %s (%v): the dashboard is not checked", chromiumBin, err)
		return
	}
	token := strings.TrimSpace(f.c.mustBerth("token", "create", "trigger-viewer", "--role", "viewer", "-q"))
	browser := newBrowser(t)
	ctx, cancel := context.WithTimeout(browser, 90*time.Second)
	defer cancel()
	signIn(t, ctx, strings.TrimPrefix(f.base, "https://"), token)
	var okState, failedState, log string
	err := chromedp.Run(ctx,
		chromedp.WaitVisible(`tr[data-run="`+okRun+`"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`tr[data-run="`+failedRun+`"]`, chromedp.ByQuery),
		chromedp.Text(`tr[data-run="`+okRun+`"] td.state`, &okState, chromedp.ByQuery),
		chromedp.Text(`tr[data-run="`+failedRun+`"] td.state`, &failedState, chromedp.ByQuery),
		chromedp.Click(`button[data-run-log="`+failedRun+`"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#logs-panel`, chromedp.ByQuery),
		chromedp.Poll(`document.querySelector("#logs").textContent.includes("build failed")`, nil, chromedp.WithPollingTimeout(30*time.Second)),
		chromedp.Text(`#logs`, &log, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("the dashboard's trigger runs: %v; page: %s", err, pageState(browser))
	}
	if okState != "succeeded" || failedState != "failed" {
		t.Errorf("the dashboard shows runs %s %q and %s %q, want succeeded and failed", okRun, okState, failedRun, failedState)
	}
	if !strings.Contains(log, "RUN exit 3") {
		t.Errorf("the dashboard's log of run %s lacks the failing step:\n%s", failedRun, log)
	}
}
