package compose

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthproject/berth/api/validation"
)

// TestLoadBytesRefusesServerFiles pastes files that name files of the
// server (and read its environment): each is refused with the key, the
// service and the line, and nothing of the server's shows in the answer.
func TestLoadBytesRefusesServerFiles(t *testing.T) {
	// A file only the server has, holding a value that must not leak.
	const secret = "server-only-value"
	dir := t.TempDir()
	serverFile := filepath.Join(dir, "server.env")
	serverCompose := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(serverFile, []byte("LEAK="+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(serverCompose, []byte("services:\n  base:\n    image: busybox\n    environment: {LEAK: "+secret+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "ctx"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BERTH_TEST_SERVER_VAR", secret)
	const head = "services:\n  web:\n    image: busybox\n"
	tests := []struct {
		name    string
		content string
		want    string // in the error
	}{
		{"env_file", head + "    env_file: " + serverFile + "\n", `compose.yaml:4: service "web": env_file: `},
		{"env_file long syntax", head + "    env_file:\n      - path: " + serverFile + "\n        required: false\n", `compose.yaml:4: service "web": env_file: `},
		{"env_file through a merge key", "x-base: &base\n  env_file: " + serverFile + "\n" + "services:\n  web:\n    <<: *base\n    image: busybox\n", `service "web": env_file: `},
		{"label_file", head + "    label_file: " + serverFile + "\n", `compose.yaml:4: service "web": label_file: `},
		{"extends another file", "services:\n  web:\n    extends: {file: " + serverCompose + ", service: base}\n", `compose.yaml:3: service "web": extends.file: `},
		{"include", "include: [" + serverCompose + "]\n" + head, `compose.yaml:1: include: `},
		{"include with env_file", "include:\n  - path: " + serverCompose + "\n    env_file: " + serverFile + "\n" + head, `compose.yaml:1: include: `},
		{"build context", head + "    build: " + filepath.Join(dir, "ctx") + "\n", `compose.yaml:4: service "web": build.context: `},
		{"build context long", head + "    build:\n      context: " + filepath.Join(dir, "ctx") + "\n", `service "web": build.context: `},
		{"dockerfile", head + "    build:\n      dockerfile: " + serverFile + "\n", `service "web": build.dockerfile: `},
		{"additional contexts", head + "    build:\n      dockerfile_inline: FROM busybox\n      additional_contexts: {x: " + dir + "}\n", `service "web": build.additional_contexts: `},
		{"bind from the server's home", head + "    volumes: [\"~/data:/data\"]\n", `compose.yaml:4: service "web": volumes[0]`},
		{"relative bind", head + "    volumes: [\"./data:/data\"]\n", `compose.yaml:4: service "web": volumes[0]`},
		{"secret from the server's environment", head + "    secrets: [pw]\nsecrets:\n  pw: {environment: BERTH_TEST_SERVER_VAR}\n", `environment variable BERTH_TEST_SERVER_VAR is not set`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := LoadBytes(context.Background(), []byte(tt.content), Options{})
			var verrs validation.Errors
			if !errors.As(err, &verrs) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadBytes = %v, %v; want validation errors containing %q", projectString(p), err, tt.want)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "berth-compose-") {
				t.Fatalf("LoadBytes error %q shows the server's files", err)
			}
		})
	}
}

// TestLoadBytesServerEnvironment interpolates variables the server has:
// none of them is seen.
func TestLoadBytesServerEnvironment(t *testing.T) {
	t.Setenv("BERTH_TEST_SERVER_VAR", "server-only-value")
	home, _ := os.UserHomeDir()
	content := "services:\n  web:\n    image: busybox\n    environment:\n      - A=${HOME}\n      - B=${BERTH_TEST_SERVER_VAR}\n      - BERTH_TEST_SERVER_VAR\n      - HOME\n    volumes: [\"/srv/${HOME}x:/data\"]\n    labels: {h: \"${HOME}\"}\n"
	p, err := LoadBytes(context.Background(), []byte(content), Options{})
	if err != nil {
		t.Fatalf("LoadBytes: %v", err)
	}
	got := projectString(p)
	if strings.Contains(got, "server-only-value") || (home != "" && strings.Contains(got, home)) {
		t.Fatalf("LoadBytes = %s; shows the server's environment", got)
	}
}

func projectString(p *Project) string {
	if p == nil {
		return "<nil>"
	}
	var b strings.Builder
	for _, s := range p.Services {
		b.WriteString(s.String())
	}
	b.WriteString(strings.Join(p.Warnings, "\n"))
	return b.String()
}

// TestLoadAliasCycle loads an anchor that holds its own alias: refused
// with its line, where the loader would loop for ever (found by
// FuzzLoadBytes).
func TestLoadAliasCycle(t *testing.T) {
	for _, content := range []string{
		"x-: &a\n    <<: *a\n    image: i",
		"services:\n  web: &w\n    image: busybox\n    labels:\n      x: *w\n",
	} {
		_, err := LoadBytes(context.Background(), []byte(content), Options{})
		if err == nil || !strings.Contains(err.Error(), "is inside the anchor &") {
			t.Fatalf("LoadBytes(%q) = %v; want the alias cycle refused", content, err)
		}
	}
}
