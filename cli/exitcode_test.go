package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// variadic are the commands that take any number of arguments past their
// first: six arguments are not a mistake in their count.
var variadic = map[string]bool{
	"berth config rm": true, "berth secret rm": true, "berth context rm": true,
	"berth node activate": true, "berth node down": true, "berth node drain": true,
	"berth node pause": true, "berth node label": true, "berth scale": true,
	"berth exec": true, "berth trigger rm": true, "berth image rm": true,
}

// TestUsageErrorsExitTwo runs every command of the tree with arguments
// and flags of the wrong shape: each must exit 2 without reaching a
// server, saying what was wrong and pointing at the command's help. The
// config path leads nowhere, so a command that tried to connect would
// exit 1 saying so.
func TestUsageErrorsExitTwo(t *testing.T) {
	noConfig := filepath.Join(t.TempDir(), "absent")
	var leaves [][]string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.HasSubCommands() && c.Runnable() && c.Name() != "help" {
			leaves = append(leaves, strings.Fields(c.CommandPath())[1:])
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(NewRoot(&cobra.Command{Use: "server", RunE: func(*cobra.Command, []string) error { return nil }}))
	if len(leaves) < 50 {
		t.Fatalf("found %d commands, want the whole tree", len(leaves))
	}
	for _, path := range leaves {
		name := "berth " + strings.Join(path, " ")
		if name == "berth server" {
			continue
		}
		t.Run(strings.Join(path, "_")+"/unknown-flag", func(t *testing.T) {
			r := run(t, noConfig, nil, append(path, "--no-such-flag")...)
			if r.code != exitUsage || !strings.Contains(r.stderr, "unknown flag: --no-such-flag") ||
				!strings.Contains(r.stderr, "See '"+name+" --help'") {
				t.Errorf("%s --no-such-flag: exit %d, stderr %q; want 2 naming the flag", name, r.code, r.stderr)
			}
		})
		if variadic[name] {
			continue
		}
		t.Run(strings.Join(path, "_")+"/too-many-args", func(t *testing.T) {
			r := run(t, noConfig, nil, append(path, "a1", "a2", "a3", "a4", "a5", "a6")...)
			if r.code != exitUsage {
				t.Errorf("%s with 6 arguments: exit %d, want 2; stderr %q", name, r.code, r.stderr)
			}
		})
	}
}

// TestBadValuesExitTwo covers the argument and flag values that commands
// check themselves: each is a usage error naming what was wrong and how
// to write it.
func TestBadValuesExitTwo(t *testing.T) {
	noConfig := filepath.Join(t.TempDir(), "absent")
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"scale", "foo"}, []string{`"foo" has no replica count`, "APP/SERVICE=N"}},
		{[]string{"scale", "shop=3"}, []string{`"shop=3" does not name a service`}},
		{[]string{"scale", "shop/web=many"}, []string{`replicas "many" is not a whole number`}},
		{[]string{"logs", "--tail", "abc", "shop/web"}, []string{`--tail "abc"`, "--tail 100"}},
		{[]string{"logs"}, []string{"wrong arguments", "usage: berth logs APP | APP/SERVICE"}},
		{[]string{"ps", "a", "b"}, []string{"wrong arguments", "usage: berth ps [APP[/SERVICE]]"}},
		{[]string{"ps", "a/b/c"}, []string{`"a/b/c" is not APP or APP/SERVICE`}},
		{[]string{"ps", "-o", "xml"}, []string{`unknown output format "xml"`}},
		// -o jsonpath= and --format: see output_test.go
		{[]string{"get", "bananas"}, []string{`unknown command "bananas" for "berth get"`}},
		{[]string{"bananas"}, []string{`unknown command "bananas" for "berth"`}},
		{[]string{"node"}, nil}, // help, exit 0 below
		{[]string{"events", "--since", "yesterday"}, []string{`--since "yesterday"`}},
		{[]string{"events", "--since", "-5m"}, []string{"--since -5m: give a positive duration"}},
		{[]string{"apply", "--wait", "--dry-run"}, []string{"--wait and --dry-run do not go together"}},
		{[]string{"apply", "--timeout", "1m"}, []string{"--timeout bounds --wait"}},
		{[]string{"rebalance", "--timeout", "1m"}, []string{"--timeout bounds --wait"}},
		{[]string{"rollout", "status", "shop"}, []string{`"shop" names an app`}},
		{[]string{"describe", "service", "shop"}, []string{`"shop" names an app`}},
		{[]string{"build", "--build-arg", "=x", "."}, []string{`--build-arg "=x" has no name`}},
		{[]string{"build", "--progress", "fancy", "."}, []string{`unknown --progress "fancy"`}},
		{[]string{"build", "-t", "Bad Name", "."}, []string{`tag "Bad Name" is not a valid image name`}},
		{[]string{"cluster", "settings", "--strategy", "random"}, []string{`unknown strategy "random"`}},
		{[]string{"cluster", "settings", "--allow-bind-mount", "rel/path"}, []string{`--allow-bind-mount "rel/path"`}},
		{[]string{"cluster", "settings", "--block-severity", "severe"}, []string{`--block-severity "severe": use low, medium, high, critical or none`}},
		{[]string{"namespace", "update", "team", "--block-severity", "severe"}, []string{`--block-severity "severe"`}},
		{[]string{"token", "create", "ci", "--role", "god"}, []string{`--role "god"`}},
		{[]string{"completion", "tcsh"}, []string{`no completion for shell "tcsh"`}},
		{[]string{"rollout", "undo", "shop/web", "--to-version", "-1"}, []string{`invalid argument "-1" for "--to-version"`}},
		{[]string{"exec", "shop/web"}, []string{"no command to run"}},
		{[]string{"image", "rm"}, []string{"usage: berth image rm IMAGE..."}},
		{[]string{"image", "prune", "--all", "extra"}, []string{"usage: berth image prune"}},
		{[]string{"system", "df", "--node"}, []string{"flag needs an argument: --node"}},
		{[]string{"login", "--from-docker", "--password-stdin"}, []string{"leave out -u and --password-stdin"}},
		{[]string{"join-token", "--ttl", "-1h"}, []string{"--ttl -1h0m0s is negative"}},
		{[]string{"token", "create", "ci", "--ttl", "-1h"}, []string{"--ttl -1h0m0s is negative"}},
		{[]string{"namespace", "create", "team", "--cpu", "lots"}, []string{`--cpu "lots"`}},
		{[]string{"namespace", "create", "team", "--memory", "big"}, []string{`--memory "big"`}},
		{[]string{"network", "create", "front", "--label", "novalue"}, []string{`--label "novalue": write KEY=VALUE`}},
		{[]string{"node", "label", "n1", "=v"}, []string{`label "=v" has no key`}},
		{[]string{"login", "--password-stdin"}, []string{"give the username with -u"}},
		{[]string{"logs", "--tail", "-3", "shop/web"}, []string{`--tail "-3"`}},
		{[]string{"top", "--node"}, []string{"flag needs an argument: --node"}},
		{[]string{"scale", "shop/web=2", "--replicas"}, []string{"unknown flag: --replicas"}},
	}
	for _, tt := range tests {
		name := strings.Join(tt.args, " ")
		t.Run(name, func(t *testing.T) {
			r := run(t, noConfig, nil, tt.args...)
			if tt.want == nil {
				if r.code != 0 {
					t.Errorf("berth %s: exit %d, want 0 (help); stderr %q", name, r.code, r.stderr)
				}
				return
			}
			if r.code != exitUsage {
				t.Errorf("berth %s: exit %d, want %d; stderr %q", name, r.code, exitUsage, r.stderr)
			}
			if !strings.HasPrefix(r.stderr, "berth: ") {
				t.Errorf("berth %s: stderr %q does not start with \"berth: \"", name, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("berth %s: stderr %q lacks %q", name, r.stderr, w)
				}
			}
		})
	}
}

// TestApplyErrorsSayBerth checks that apply words a problem of its input
// as every other error: one "berth: " line, not an "error: " list.
func TestApplyErrorsSayBerth(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "compose.yaml")
	r := run(t, filepath.Join(t.TempDir(), "absent"), nil, "apply", "-f", missing)
	want := "berth: " + missing + ": cannot read the Compose file: no such file or directory; check the path given with -f; nothing was changed\n"
	if r.code != exitFailure || r.stderr != want {
		t.Errorf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, want)
	}
}
