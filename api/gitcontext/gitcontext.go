// Package gitcontext recognises build contexts that are git repositories:
// URLs the node's BuildKit fetches with git itself, as `docker build`
// takes them ("https://host/repo.git#ref:subdir", "git://host/repo",
// "ssh://git@host/repo.git", "git@host:repo.git"). The CLI, the control
// plane and the agent read them by this one rule, BuildKit's own.
package gitcontext

import (
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/dfgitutil"
)

// Is reports whether ref names a git repository rather than a directory.
// http(s) URLs must end in .git (before the fragment), as BuildKit
// requires; "github.com/..." without a scheme is a directory here.
func Is(ref string) bool {
	if !hasScheme(ref) {
		return false
	}
	_, ok, err := dfgitutil.ParseGitRef(ref)
	return ok && err == nil
}

// hasScheme reports whether ref is written as a remote: a URL or git's
// scp-like user@host:path.
func hasScheme(ref string) bool {
	if strings.Contains(ref, "://") {
		return true
	}
	at, colon := strings.Index(ref, "@"), strings.Index(ref, ":")
	return at > 0 && colon > at
}

// Check says what is wrong with a git build context, for the user: nil
// when BuildKit can fetch it.
func Check(ref string) error {
	if !hasScheme(ref) {
		return fmt.Errorf("%q is not a git URL: use https://host/repo.git[#REF[:SUBDIR]], git://host/repo[#REF[:SUBDIR]] or ssh://user@host/repo.git", ref)
	}
	_, ok, err := dfgitutil.ParseGitRef(ref)
	switch {
	case err != nil && ok:
		return fmt.Errorf("git URL %q: %v; write it as URL#REF:SUBDIR (https://host/repo.git#main:web)", ref, err)
	case !ok || err != nil:
		return fmt.Errorf("%q is not a git URL BuildKit can fetch: use https://host/repo.git[#REF[:SUBDIR]] (http URLs must end in .git), git://host/repo[#REF[:SUBDIR]] or ssh://user@host/repo.git", ref)
	}
	return nil
}

// WithRef is repo (a git URL without fragment) at ref, in the directory
// subdir of the repository ("" for its root): repo#ref[:subdir].
func WithRef(repo, ref, subdir string) string {
	repo, _, _ = strings.Cut(repo, "#")
	subdir = strings.Trim(subdir, "/")
	if subdir == "" {
		return repo + "#" + ref
	}
	return repo + "#" + ref + ":" + subdir
}
