package e2e

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// buildDockerfile is multi-stage: a build argument and a heredoc make a
// file in the first stage, which the second copies, with an ENV and a file
// of the context; the command prints them all.
const buildDockerfile = `ARG BASE=localhost/busybox:latest
FROM ${BASE} AS builder
ARG GREETING=hello
RUN <<EOT
mkdir -p /out
echo "$GREETING from the build stage" > /out/greeting
EOT

FROM localhost/busybox:latest
ENV WHO=berth
COPY --from=builder /out/greeting /greeting
COPY message.txt /message.txt
CMD ["sh", "-c", "cat /greeting /message.txt; echo who=$WHO; sleep 3600"]
`

// brokenDockerfile fails on its second line.
const brokenDockerfile = "FROM localhost/busybox:latest\nBOGUS instruction\n"

// TestBuildAndApply builds an image on alpha with berth build, then
// applies a Compose file whose service builds the same context and runs a
// replica on each of two machines: the image is built on one and fetched
// by the other from it, and both run the bits built.
func TestBuildAndApply(t *testing.T) {
	c := newCluster(t)
	c.startMachine("alpha")
	c.startMachine("beta")
	c.importImage()
	c.writeFile("app/Dockerfile", buildDockerfile)
	c.writeFile("app/message.txt", "a file of the context\n")
	c.writeFile("app/.dockerignore", "secret.txt\n")
	ctxDir := filepath.Dir(c.writeFile("app/secret.txt", "must not be sent\n"))

	out, errOut, err := c.berth("build", "-t", "localhost/web:1", "--node", "alpha", "--build-arg", "GREETING=hi", "--progress", "plain", ctxDir)
	if err != nil {
		t.Fatalf("berth build: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	// Builds scan what they made: busybox has no package database.
	if !regexp.MustCompile(`^built localhost/web:1@sha256:[0-9a-f]{64} on node alpha; scanned: no findings\n$`).MatchString(out) {
		t.Fatalf("berth build printed %q, want the image, its digest, the node and the scan's findings", out)
	}
	if !strings.Contains(errOut, "COPY --from=builder /out/greeting /greeting") {
		t.Errorf("berth build's progress does not show the steps:\n%s", errOut)
	}

	compose := c.writeFile("compose.yaml", `
name: built
services:
  web:
    build:
      context: ./app
      args:
        GREETING: hey
    deploy:
      replicas: 2
      placement:
        max_replicas_per_node: 1
`)
	c.mustBerth("apply", "-f", compose, "--progress", "plain")
	// The image is built on one machine; the other fetches it from there.
	tasks := c.waitRunning("built/web", 2, 2*time.Minute)
	c.taskOn(tasks, "alpha")
	c.taskOn(tasks, "beta")
	for _, node := range []string{"alpha", "beta"} {
		if out := c.mustBerth("image", "ls", "--node", node); !strings.Contains(out, "built-web:latest") {
			t.Errorf("%s runs built/web but does not hold its image:\n%s", node, out)
		}
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		logs, _, err := c.berth("logs", "built/web")
		ok := err == nil && strings.Contains(logs, "hey from the build stage") &&
			strings.Contains(logs, "a file of the context") && strings.Contains(logs, "who=berth")
		return ok, "logs of built/web: " + logs
	})
	svc := c.mustBerth("get", "services", "built/web", "-o", "json")
	if !strings.Contains(svc, "built-web:latest") {
		t.Errorf("service built/web does not run built-web:latest:\n%s", svc)
	}
	c.mustBerth("delete", "built")
}

// TestBuildFailures: a broken Dockerfile fails berth build, and berth
// apply of a service that builds it, with the line at fault in the
// message, and the apply leaves no service behind.
func TestBuildFailures(t *testing.T) {
	c := newCluster(t)
	c.startMachine("alpha")
	c.importImage()
	ctxDir := filepath.Dir(c.writeFile("broken/Dockerfile", brokenDockerfile))
	atFault := func(msg string) bool {
		return strings.Contains(msg, "line 2") || strings.Contains(msg, "Dockerfile:2")
	}

	out, errOut, err := c.berth("build", "-t", "localhost/broken:1", "--progress", "plain", ctxDir)
	if err == nil || !atFault(errOut) || out != "" {
		t.Fatalf("berth build of a broken Dockerfile: err %v, stdout %q, stderr:\n%s\nwant a failure naming line 2", err, out, errOut)
	}

	compose := c.writeFile("compose.yaml", "name: broken\nservices:\n  web:\n    build: ./broken\n")
	out, errOut, err = c.berth("apply", "-f", compose, "--progress", "plain")
	if err == nil || !atFault(errOut) || !strings.Contains(errOut, "nothing was changed") {
		t.Fatalf("berth apply with a broken build: err %v, stdout %q, stderr:\n%s\nwant a failure naming line 2", err, out, errOut)
	}
	if apps := c.mustBerth("get", "apps"); strings.Contains(apps, "broken") {
		t.Fatalf("a failed build left the app behind:\n%s", apps)
	}
}
