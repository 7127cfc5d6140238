package cli

import (
	"strings"
	"testing"

	"github.com/berthproject/berth/api/version"
)

// TestServerVersionSkew: a CLI more than one minor version from the server
// (the fake says v9.9.9) is refused before its command's call, with both
// versions named; one minor apart works; berth version always answers.
func TestServerVersionSkew(t *testing.T) {
	old := version.Version
	t.Cleanup(func() { version.Version = old })

	f := &fakeCluster{}
	cfg := serve(t, f)
	version.Version = "v9.7.3"
	r := run(t, cfg, nil, "get", "apps")
	for _, want := range []string{"CLI v9.7.3", "server v9.9.9", "upgrade the CLI to v9.9"} {
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Fatalf("get apps with a CLI two minors behind: exit %d, stderr %q; want a failure saying %q", r.code, r.stderr, want)
		}
	}
	if r := mustRun(t, cfg, "version"); !strings.Contains(r.stdout, "v9.7.3") || !strings.Contains(r.stdout, "v9.9.9") {
		t.Fatalf("version with a CLI two minors behind: stdout %q, want both versions", r.stdout)
	}

	version.Version = "v9.8.0"
	mustRun(t, cfg, "get", "apps")
}
