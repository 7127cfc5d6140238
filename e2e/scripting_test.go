package e2e

import (
	"encoding/json"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestImageRmPruneAndSystemDf imports two images onto a node and runs a
// service on one: prune removes only the unused one, image rm of the used
// one is refused naming the task (with --force too, since it runs), and
// system df counts the images image ls lists. The scripting flags (-q,
// --filter, --format, exit code 2) are checked against the real binary
// on the way.
func TestImageRmPruneAndSystemDf(t *testing.T) {
	c := newCluster(t)
	c.startAgent("alpha")
	c.importImage()
	c.mustBerth("image", "import", testappImage())
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", sleepCompose), "-p", "keep")
	tasks := c.waitRunning("keep/sleeper", 2, 90*time.Second)

	// -q prints the task IDs, --filter narrows them.
	ids := strings.Fields(c.mustBerth("ps", "-q"))
	want := []string{tasks[0].ID, tasks[1].ID}
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("ps -q = %v, want %v", ids, want)
	}
	if got := strings.TrimSpace(c.mustBerth("ps", "--filter", "name=sleeper.2", "--format", "{{.service}}.{{.slot}} {{.state}}")); got != "sleeper.2 running" {
		t.Errorf("ps --filter name=sleeper.2 --format = %q", got)
	}
	if _, errOut, err := c.berth("scale", "keep/sleeper=many"); exitCode(err) != 2 || !strings.HasPrefix(errOut, "berth: ") {
		t.Errorf("scale with a bad count: exit %d, stderr %q; want 2", exitCode(err), errOut)
	}

	images := imageNames(t, c)
	for _, im := range []string{"docker.io/localhost/busybox:latest", "docker.io/localhost/testapp:latest"} {
		if !slices.ContainsFunc(images, func(s string) bool { return strings.HasSuffix(s, strings.TrimPrefix(im, "docker.io/")) }) {
			t.Fatalf("image ls -q = %v, want it to hold %s", images, im)
		}
	}
	busybox := images[slices.IndexFunc(images, func(s string) bool { return strings.HasSuffix(s, "localhost/busybox:latest") })]
	testapp := images[slices.IndexFunc(images, func(s string) bool { return strings.HasSuffix(s, "localhost/testapp:latest") })]

	// system df counts what image ls lists.
	var df []struct {
		Node              string `json:"node"`
		Images            int    `json:"images"`
		ImagesBytes       int64  `json:"imagesBytes"`
		Containers        int    `json:"containers"`
		BuildCache        string `json:"buildCache"`
		ReclaimableImages int64  `json:"imagesReclaimableBytes"`
	}
	out := c.mustBerth("system", "df", "-o", "json")
	if err := json.Unmarshal([]byte(out), &df); err != nil {
		t.Fatalf("system df -o json: %v\n%s", err, out)
	}
	if len(df) != 1 || df[0].Node != "alpha" || df[0].Images != len(images) || df[0].Containers < 2 || df[0].ImagesBytes <= 0 || df[0].ReclaimableImages <= 0 {
		t.Errorf("system df = %+v, want alpha with %d images (as image ls), 2 containers or more, some reclaimable", df, len(images))
	}
	if table := c.mustBerth("system", "df"); !strings.Contains(table, "alpha") || !strings.Contains(table, "TOTAL") {
		t.Errorf("system df table:\n%s", table)
	}

	// The image of the running service stays, naming its tasks.
	for _, args := range [][]string{{"image", "rm", busybox}, {"image", "rm", busybox, "--force"}} {
		stdout, errOut, err := c.berth(args...)
		if exitCode(err) != 1 || !strings.Contains(errOut, "kept "+busybox) || !strings.Contains(errOut, "keep/sleeper.1") || !strings.Contains(errOut, "keep/sleeper.2") {
			t.Errorf("berth %s: exit %d, stdout %q, stderr %q; want 1 naming both tasks", strings.Join(args, " "), exitCode(err), stdout, errOut)
		}
	}
	if errOut := c.mustBerth("image", "prune"); !strings.Contains(errOut, "Total reclaimed space: 0B") {
		t.Errorf("image prune with nothing dangling: %q", errOut)
	}

	// prune --all removes only the unused image.
	out = c.mustBerth("image", "prune", "--all")
	if !strings.Contains(out, "alpha: removed "+testapp) || strings.Contains(out, busybox) || strings.Contains(out, "Total reclaimed space: 0B") {
		t.Errorf("image prune --all:\n%s\nwant %s removed, %s kept, space freed", out, testapp, busybox)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		now := imageNames(t, c)
		return slices.Contains(now, busybox) && !slices.Contains(now, testapp), "image ls -q = " + strings.Join(now, " ")
	})
	c.waitRunning("keep/sleeper", 2, 30*time.Second)

	// Once the service is gone, its image may go.
	c.mustBerth("rm", "keep")
	eventually(t, 60*time.Second, func() (bool, string) {
		stdout, errOut, err := c.berth("image", "rm", busybox, "--force")
		return err == nil && strings.Contains(stdout, "alpha: removed "+busybox), stdout + errOut
	})
}

// imageNames is `berth image ls -q`.
func imageNames(t *testing.T, c *cluster) []string {
	t.Helper()
	return strings.Fields(c.mustBerth("image", "ls", "-q"))
}

// exitCode is the exit code of a finished berth run, 0 for success.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
