package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// tickerCompose runs one task that names itself once (a random id), then
// says so every 200ms: a replacement says another id.
const tickerCompose = `
services:
  ticker:
    image: localhost/busybox:latest
    command: ["sh", "-c", "id=$$(cat /proc/sys/kernel/random/uuid); while true; do echo tick $$id; sleep 0.2; done"]
`

var tickRe = regexp.MustCompile(`tick ([0-9a-f-]{36})`)

// startBerth runs a long-lived berth command (one that follows) until the
// test ends.
func (c *cluster) startBerth(name string, args ...string) *proc {
	c.t.Helper()
	bin, args := command(c.netns, append([]string{"--config", c.configPath}, args...)...)
	return startProc(c.t, name, nil, bin, args...)
}

// ticks returns the ids of the tickers that wrote to out, in order of
// their first line.
func ticks(out string) []string {
	var ids []string
	for _, m := range tickRe.FindAllStringSubmatch(out, -1) {
		if len(ids) == 0 || !strings.Contains(strings.Join(ids, " "), m[1]) {
			ids = append(ids, m[1])
		}
	}
	return ids
}

// TestFollowLogsAndEventsThroughAReplacement follows a service's logs and
// its app's events, then kills its container: the events show the failure
// as it happens, and the logs go on with the replacement's output.
func TestFollowLogsAndEventsThroughAReplacement(t *testing.T) {
	c := newCluster(t)
	c.startAgent("alpha")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", tickerCompose), "-p", "flw")
	victim := c.waitRunning("flw/ticker", 1, 60*time.Second)[0]

	logs := c.startBerth("berth logs -f", "logs", "-f", "flw/ticker")
	events := c.startBerth("berth events -f", "events", "-f", "flw")
	logs.waitOutput(t, "ticker.1@alpha | tick ", 30*time.Second)
	events.waitOutput(t, "MESSAGE", 30*time.Second)
	first := ticks(logs.out.String())
	if len(first) != 1 {
		t.Fatalf("before the kill, want one ticker in the logs, have %q:\n%s", first, logs.out.String())
	}
	if strings.Contains(events.out.String(), "exit code 137") {
		t.Fatalf("events -f shows a failure before any:\n%s", events.out.String())
	}

	c.killTask(victim)
	events.waitOutput(t, "exit code 137", 30*time.Second)
	for _, l := range strings.Split(events.out.String(), "\n") {
		if strings.Contains(l, "exit code 137") && !strings.Contains(l, "fail") && !strings.Contains(l, "replace") {
			t.Errorf("event row %q: want the failure (or the replacement) of flw/ticker.1", l)
		}
	}
	eventually(t, 60*time.Second, func() (bool, string) {
		ids := ticks(logs.out.String())
		return len(ids) >= 2 && ids[0] == first[0], fmt.Sprintf("want the replacement's ticks after %s, have tickers %q", first[0], ids)
	})
	select {
	case <-logs.done:
		t.Fatalf("berth logs -f ended (%v):\n%s", logs.err, logs.out.String())
	default:
	}
	c.mustBerth("delete", "flw")
}

// TestDiffShowsChangedFields applies a file, then a changed one with
// --diff: each changed field is printed, and --dry-run changes nothing.
func TestDiffShowsChangedFields(t *testing.T) {
	c := newCluster(t)
	v1 := `
services:
  web:
    image: localhost/busybox:latest
    command: ["sleep", "3600"]
    environment:
      MODE: "a"
`
	v2 := strings.Replace(v1, `MODE: "a"`, "MODE: \"b\"\n      EXTRA: \"1\"\n    deploy:\n      replicas: 2", 1)
	c.mustBerth("apply", "-f", c.writeFile("v1/compose.yaml", v1), "-p", "dif")
	file := c.writeFile("v2/compose.yaml", v2)

	out := c.mustBerth("apply", "-f", file, "-p", "dif", "--diff", "--dry-run")
	for _, want := range []string{"~ service web", "~ deploy.replicas: 1 → 2", `~ environment.MODE: "a" → "b"`, `+ environment.EXTRA: "1"`} {
		if !strings.Contains(out, want) {
			t.Errorf("apply --diff --dry-run lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "image") || strings.Contains(out, "command") {
		t.Errorf("apply --diff shows unchanged fields:\n%s", out)
	}
	// The dry run wrote nothing: the same diff again, then applied for real.
	if again := c.mustBerth("apply", "-f", file, "-p", "dif", "--diff"); !strings.Contains(again, "~ deploy.replicas: 1 → 2") {
		t.Errorf("after a dry run, apply --diff lacks the same change:\n%s", again)
	}
	if after := c.mustBerth("apply", "-f", file, "-p", "dif", "--diff", "--dry-run"); strings.Contains(after, "~ ") || strings.Contains(after, "+ ") {
		t.Errorf("once applied, apply --diff still shows changes:\n%s", after)
	}
	c.mustBerth("delete", "dif")
}
