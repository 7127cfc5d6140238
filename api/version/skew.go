package version

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/semver"
)

// MaxMinorSkew is how many minor versions two parts of a cluster (an agent
// and a server, a CLI and a server, two servers) may be apart: one, so that
// servers and then agents can be upgraded one at a time.
const MaxMinorSkew = 1

// ErrSkew is wrapped by the error Skew returns for versions too far apart.
var ErrSkew = errors.New("versions too far apart")

// Side is one party of a version check: what it is ("agent", "server",
// "CLI") and the version it runs.
type Side struct {
	Role, Version string
}

// Skew says whether a and b may work together: nil when they are one minor
// version apart or less, else an error wrapping ErrSkew that names both and
// says which to upgrade (the older, to the newer's major.minor).
//
// Versions are compared by semver major.minor: v0.3.1 and v0.4.0 are one
// apart; a build between tags, as git describe names it (v0.3.0-5-gabc1234),
// counts as its last tag's. Identical versions always match, and a version
// that is not semver (a plain `go build` says "dev") is not checked: such a
// build is for development, not for a cluster that is upgraded.
func Skew(a, b Side) error {
	if a.Version == b.Version {
		return nil
	}
	am, an, aok := majorMinor(a.Version)
	bm, bn, bok := majorMinor(b.Version)
	if !aok || !bok {
		return nil
	}
	if am == bm && absDiff(an, bn) <= MaxMinorSkew {
		return nil
	}
	older, newer := a, b
	if semver.Compare(canonical(a.Version), canonical(b.Version)) > 0 {
		older, newer = b, a
	}
	return fmt.Errorf("%w: %s %s and %s %s are more than %d minor version apart: upgrade the %s to %s (or run a %s within one minor version of it)",
		ErrSkew, a.Role, a.Version, b.Role, b.Version, MaxMinorSkew,
		older.Role, semver.MajorMinor(canonical(newer.Version)), older.Role)
}

// MajorMinor returns v's major.minor as "vMAJOR.MINOR", or "" when v is
// not a semver version.
func MajorMinor(v string) string {
	return semver.MajorMinor(canonical(v))
}

// canonical puts the "v" that semver wants in front of v.
func canonical(v string) string {
	if !strings.HasPrefix(v, "v") {
		return "v" + v
	}
	return v
}

func majorMinor(v string) (major, minor int, ok bool) {
	mm := semver.MajorMinor(canonical(v))
	if mm == "" {
		return 0, 0, false
	}
	ma, mi, _ := strings.Cut(strings.TrimPrefix(mm, "v"), ".")
	major, err1 := strconv.Atoi(ma)
	minor, err2 := strconv.Atoi(mi)
	return major, minor, err1 == nil && err2 == nil
}

func absDiff(a, b int) int {
	if a > b {
		return a - b
	}
	return b - a
}
