package cli

import (
	"strings"
	"testing"

	"github.com/berthproject/berth/api/clientconfig"
	"github.com/berthproject/berth/internal/testpki"
)

func TestContexts(t *testing.T) {
	// Two clusters: the local one in the config file, prod in a file of
	// its own as its server wrote it.
	local := serve(t, &fakeCluster{nodes: testNodes()})
	prodFake := &fakeCluster{nodes: testNodes()[:1]}
	prod := serve(t, prodFake)

	mustRun(t, local, "context", "import", "prod", prod)
	ls := mustRun(t, local, "context", "ls")
	if got := strings.Fields(strings.Split(ls.stdout, "\n")[1]); len(got) < 2 || got[0] != "*" || got[1] != "default" {
		t.Errorf("context ls before use, row 1 = %q, want * default", got)
	}
	if !strings.Contains(ls.stdout, "prod") {
		t.Errorf("context ls lacks prod:\n%s", ls.stdout)
	}

	// One command against prod with --context and $BERTH_CONTEXT.
	if out := mustRun(t, local, "get", "nodes", "--context", "prod").stdout; strings.Contains(out, "node-2") {
		t.Errorf("get nodes --context prod shows the local cluster's node-2:\n%s", out)
	}
	t.Setenv(clientconfig.EnvContext, "prod")
	if out := mustRun(t, local, "context", "show").stdout; !strings.HasPrefix(out, "prod\t") {
		t.Errorf("context show with $%s=prod = %q", clientconfig.EnvContext, out)
	}
	t.Setenv(clientconfig.EnvContext, "")

	mustRun(t, local, "context", "use", "prod")
	if out := mustRun(t, local, "get", "nodes").stdout; strings.Contains(out, "node-2") {
		t.Errorf("get nodes after use prod shows node-2:\n%s", out)
	}
	if out := mustRun(t, local, "get", "nodes", "--context", "default").stdout; !strings.Contains(out, "node-2") {
		t.Errorf("get nodes --context default lacks node-2:\n%s", out)
	}
	mustRun(t, local, "context", "rm", "prod")
	if out := mustRun(t, local, "context", "show").stdout; !strings.HasPrefix(out, "default\t") {
		t.Errorf("context show after rm of the current one = %q, want default", out)
	}
}

func TestContextErrors(t *testing.T) {
	local := serve(t, &fakeCluster{})
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown context", []string{"ps", "--context", "nope"}, 1, `no context "nope"`},
		{"use unknown", []string{"context", "use", "nope"}, 1, `no context "nope"`},
		{"import reserved name", []string{"context", "import", "default", local}, 2, "reserved"},
		{"import missing file", []string{"context", "import", "x", "/nonexistent/config"}, 1, "no Berth config at /nonexistent/config"},
		{"import twice", []string{"context", "import", "self", local}, 1, "--force"},
	}
	mustRun(t, local, "context", "import", "self", local)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, local, nil, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("berth %s: exit %d, stderr %q; want exit %d and %q", strings.Join(tt.args, " "), r.code, r.stderr, tt.code, tt.want)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	cfg := serve(t, &fakeCluster{nodes: testNodes()})
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"ok", []string{"get", "nodes"}, 0, ""},
		{"unknown command", []string{"pss"}, 2, `unknown command "pss" for "berth"; did you mean ps or push?`},
		{"unknown subcommand", []string{"node", "explode"}, 2, `unknown command "explode"`},
		{"unknown flag", []string{"ps", "--bogus"}, 2, "unknown flag: --bogus"},
		{"bad flag value", []string{"ps", "-o", "xml"}, 2, `unknown output format "xml"`},
		{"too many args", []string{"ps", "a", "b"}, 2, "accepts at most 1 arg"},
		{"bad argument shape", []string{"ps", "a/b/c"}, 2, "is not APP or APP/SERVICE"},
		{"failure", []string{"describe", "node", "nope"}, 1, "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, cfg, nil, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("berth %s: exit %d, stderr %q; want exit %d and %q", strings.Join(tt.args, " "), r.code, r.stderr, tt.code, tt.want)
			}
			if tt.code == 2 && !strings.Contains(r.stderr, "--help") {
				t.Errorf("usage error does not point to --help: %q", r.stderr)
			}
		})
	}
}

func TestCompletion(t *testing.T) {
	f := &fakeCluster{nodes: testNodes(), tasks: testTasks(testEpoch), services: testServices()}
	cfg := serve(t, f)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"ps apps and services", []string{"ps", ""}, []string{"shop", "shop/web"}},
		{"ps prefix", []string{"ps", "shop/"}, []string{"shop/web"}},
		{"ps second arg", []string{"ps", "shop", ""}, nil},
		{"nodes", []string{"node", "drain", "node-1", ""}, []string{"node-2"}},
		{"node flag", []string{"ps", "--node", ""}, []string{"node-1", "node-2"}},
		{"tasks", []string{"describe", "task", "task-web"}, []string{"task-web-1-0123456789\tshop/web.1 running"}},
		{"output flag", []string{"get", "apps", "-o", ""}, []string{"table", "json", "yaml"}},
		{"contexts", []string{"ps", "--context", ""}, []string{"default"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRun(t, cfg, append([]string{"__complete"}, tt.args...)...)
			got := completions(r.stdout)
			for _, w := range tt.want {
				if !containsLine(got, w) {
					t.Errorf("completions of %q = %q, want %q among them", tt.args, got, w)
				}
			}
			if tt.want == nil && len(got) != 0 {
				t.Errorf("completions of %q = %q, want none", tt.args, got)
			}
		})
	}

	// No server: no candidates and no error output (cobra's own note of
	// the directive on stderr is for debugging; shells drop it).
	gone := writeConfig(t, "127.0.0.1:1", testpki.New(t))
	r := mustRun(t, gone, "__complete", "ps", "")
	if got := completions(r.stdout); len(got) != 0 || strings.Contains(r.stderr, "berth:") || strings.Contains(r.stderr, "127.0.0.1") {
		t.Errorf("completion without a server: %q, stderr %q; want nothing", got, r.stderr)
	}
}

// completions are the candidates of cobra's __complete output, without
// its last line (":directive").
func completions(out string) []string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) > 0 && strings.HasPrefix(lines[len(lines)-1], ":") {
		lines = lines[:len(lines)-1]
	}
	var got []string
	for _, l := range lines {
		if l != "" {
			got = append(got, l)
		}
	}
	return got
}

func containsLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		r := mustRun(t, "/nonexistent", "completion", shell)
		if !strings.Contains(r.stdout, "berth") || len(r.stdout) < 500 {
			t.Errorf("completion %s printed %d bytes, want a script", shell, len(r.stdout))
		}
	}
	if r := run(t, "/nonexistent", nil, "completion", "tcsh"); r.code != 2 {
		t.Errorf("completion tcsh: exit %d, want 2", r.code)
	}
}
