package cli

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeDocker writes a docker config folder with config.json and a
// credential helper docker-credential-berthtest on $PATH, which answers
// `get` for registry.example.com and records what it was asked.
func fakeDocker(t *testing.T, configJSON string) (asked string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(configJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	asked = filepath.Join(bin, "asked")
	helper := `#!/bin/sh
read -r server
echo "$1 $server" >> ` + asked + `
case "$server" in
registry.example.com) printf '{"ServerURL":"%s","Username":"helper-user","Secret":"helper-secret"}\n' "$server" ;;
*) echo "credentials not found in native keychain"; exit 1 ;;
esac
`
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-berthtest"), []byte(helper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return asked
}

func TestLoginFromDocker(t *testing.T) {
	auth := base64.StdEncoding.EncodeToString([]byte("ann:file-secret"))
	asked := fakeDocker(t, `{
  "auths": {
    "127.0.0.1:5000": {"auth": "`+auth+`"},
    "https://index.docker.io/v1/": {"auth": "`+base64.StdEncoding.EncodeToString([]byte("bob:hub-secret"))+`"},
    "sso.example.com": {"identitytoken": "tok"}
  },
  "credHelpers": {"registry.example.com": "berthtest"}
}`)
	f := &registryCluster{}
	cfg := serve(t, f)

	// Named registries only.
	r := mustRun(t, cfg, "login", "--from-docker", "registry.example.com", "https://127.0.0.1:5000")
	want := "Login stored for registry.example.com as helper-user (from docker's credential helper berthtest)\n" +
		"Login stored for 127.0.0.1:5000 as ann (from docker's config.json)\n"
	if r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	if len(f.logins) != 2 || f.logins[0].Registry != "registry.example.com" || f.logins[0].Username != "helper-user" || f.logins[0].Password != "helper-secret" ||
		f.logins[1].Registry != "127.0.0.1:5000" || f.logins[1].Username != "ann" || f.logins[1].Password != "file-secret" {
		t.Errorf("Login requests = %v", f.logins)
	}
	if b, err := os.ReadFile(asked); err != nil || strings.TrimSpace(string(b)) != "get registry.example.com" {
		t.Errorf("the helper was asked %q (%v), want one get of registry.example.com", b, err)
	}
	for _, secret := range []string{"helper-secret", "file-secret", "hub-secret"} {
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("output shows the secret %q: %q %q", secret, r.stdout, r.stderr)
		}
	}

	// All of them: the token-only entry is refused, saying why, the rest
	// stored; the exit says some failed.
	f.logins = nil
	r = run(t, cfg, nil, "login", "--from-docker")
	if r.code != exitFailure {
		t.Errorf("exit %d, want 1 (one registry not imported); stderr %q", r.code, r.stderr)
	}
	var got []string
	for _, l := range f.logins {
		got = append(got, l.Registry+" "+l.Username)
	}
	if !slices.Equal(got, []string{" bob", "127.0.0.1:5000 ann", "registry.example.com helper-user"}) {
		t.Errorf("stored %q, want docker.io, 127.0.0.1:5000 and registry.example.com", got)
	}
	if !strings.Contains(r.stdout, "Login stored for docker.io as bob") ||
		!strings.Contains(r.stderr, "berth: sso.example.com: docker holds a token") ||
		!strings.Contains(r.stderr, "berth: 1 of 4 registries were not imported") {
		t.Errorf("stdout %q, stderr %q", r.stdout, r.stderr)
	}

	// The server refuses one: said, and the exit is 1.
	f.logins, f.loginErr = nil, status.Error(codes.Unauthenticated, "login to 127.0.0.1:5000 failed: unauthorized")
	r = run(t, cfg, nil, "login", "--from-docker", "127.0.0.1:5000")
	if r.code != exitFailure || !strings.Contains(r.stderr, "unauthorized") {
		t.Errorf("refused: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestLoginFromDockerMistakes(t *testing.T) {
	fakeDocker(t, `{"auths": {"127.0.0.1:5000": {"auth": "`+base64.StdEncoding.EncodeToString([]byte("ann:pw"))+`"}}}`)
	f := &registryCluster{}
	cfg := serve(t, f)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"registry docker does not know", []string{"login", "--from-docker", "ghcr.io"}, exitFailure, "ghcr.io has no credential in"},
		{"with -u", []string{"login", "--from-docker", "-u", "ann"}, exitUsage, "leave out -u and --password-stdin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, cfg, nil, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tt.code, tt.want)
			}
		})
	}
	if len(f.logins) != 0 {
		t.Errorf("mistakes stored %v", f.logins)
	}
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	if r := run(t, cfg, nil, "login", "--from-docker"); r.code != exitFailure || !strings.Contains(r.stderr, "no docker config at") {
		t.Errorf("no config: exit %d, stderr %q", r.code, r.stderr)
	}
}
