package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// gitRepo is a git repository served read-only by `git daemon` on
// loopback, as a git host would serve it.
type gitRepo struct {
	t    testing.TB
	dir  string // the work tree
	url  string // git://127.0.0.1:port/repo
	proc *proc
}

// startGitRepo makes a repository with one branch, main, and serves it.
func startGitRepo(t testing.TB) *gitRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: run hack/setup-host.sh")
	}
	base := t.TempDir()
	r := &gitRepo{t: t, dir: filepath.Join(base, "repo")}
	r.git("init", "-q", "-b", "main", r.dir)
	port := freePort(t)
	r.url = fmt.Sprintf("git://127.0.0.1:%d/repo", port)
	r.proc = startProc(t, "git-daemon", nil, "git", "daemon", "--reuseaddr", "--export-all", "--informative-errors",
		"--listen=127.0.0.1", fmt.Sprintf("--port=%d", port), "--base-path="+base, base)
	eventually(t, 20*time.Second, func() (bool, string) {
		err := exec.Command("git", "ls-remote", r.url).Run()
		return err == nil, fmt.Sprintf("git daemon at %s does not answer: %v", r.url, err)
	})
	return r
}

func (r *gitRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	if args[0] == "init" {
		cmd.Dir = ""
	}
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@example.invalid",
		"GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@example.invalid")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files into the work tree, commits them to main and
// returns the commit's id.
func (r *gitRepo) commit(files map[string]string, message string) string {
	r.t.Helper()
	for name, content := range files {
		path := filepath.Join(r.dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.git("add", "-A")
	r.git("commit", "-q", "-m", message)
	return r.git("rev-parse", "HEAD")
}

// filesHolding lists the files under dir whose bytes contain s.
func filesHolding(t testing.TB, dir, s string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte(s)) {
			found = append(found, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}
