package trust

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// ErrBadPattern marks a trust policy pattern that cannot be used.
var ErrBadPattern = errors.New("bad trust policy pattern")

// ValidatePattern checks a policy pattern: registry/repository, lower
// case, where * matches within one path segment, ** matches across
// segments and ? one character; no tag, digest or character classes.
func ValidatePattern(p string) error {
	fail := func(why string) error {
		return fmt.Errorf("%w %q: %s; write registry/repository with * for any part of one segment and ** for any path, as in 'registry.example.com/team/*'", ErrBadPattern, p, why)
	}
	if p == "" {
		return fail("it is empty")
	}
	if strings.ContainsAny(p, " \t\n[]{}\\") {
		return fail("it has spaces, brackets or backslashes")
	}
	if strings.Contains(p, "@") {
		return fail("it names a digest; a policy covers repositories, every digest of them")
	}
	if p != strings.ToLower(p) {
		return fail("it has upper-case letters; registries and repositories are lower case")
	}
	if strings.Contains(p, "***") {
		return fail("*** is not a wildcard")
	}
	host, rest, ok := strings.Cut(p, "/")
	if !ok || rest == "" {
		return fail("it has no repository after the registry")
	}
	if host != "*" && host != "**" && !strings.ContainsAny(host, ".:*?") && host != "localhost" {
		return fail(fmt.Sprintf("%q is not a registry host (a name with a dot or a port, or localhost); Docker Hub images are docker.io/library/NAME", host))
	}
	for _, seg := range strings.Split(rest, "/") {
		if seg == "" {
			return fail("it has an empty path segment")
		}
		if strings.Contains(seg, ":") {
			return fail("it names a tag; a policy covers repositories, every tag of them")
		}
	}
	return nil
}

// MatchPattern reports whether repository (registry/repository, as
// imageref.Ref.Repository gives it) matches pattern.
func MatchPattern(pattern, repository string) bool {
	return globMatch(pattern, repository)
}

// globMatch matches s against p: ** any run of characters, * any run
// without '/', ? one character other than '/'.
func globMatch(p, s string) bool {
	for len(p) > 0 {
		switch {
		case strings.HasPrefix(p, "**"):
			rest := p[2:]
			for i := 0; i <= len(s); i++ {
				if globMatch(rest, s[i:]) {
					return true
				}
			}
			return false
		case p[0] == '*':
			rest := p[1:]
			for i := 0; i <= len(s); i++ {
				if globMatch(rest, s[i:]) {
					return true
				}
				if i < len(s) && s[i] == '/' {
					return false
				}
			}
			return false
		case p[0] == '?':
			if s == "" || s[0] == '/' {
				return false
			}
		default:
			if s == "" || s[0] != p[0] {
				return false
			}
		}
		p, s = p[1:], s[1:]
	}
	return s == ""
}

// specificity orders matching patterns: the one with more literal
// characters says more about the repository, and wins.
func specificity(p string) int {
	return len(p) - strings.Count(p, "*")*2 - strings.Count(p, "?")
}

// PolicyFor returns the policy of namespace that covers repository, nil
// when none does. When several match, the most specific pattern wins
// (most literal characters; then the first in sort order), so a team's
// policy can narrow a registry-wide one.
func PolicyFor(policies []*berthv1.TrustPolicy, namespace, repository string) *berthv1.TrustPolicy {
	var best *berthv1.TrustPolicy
	for _, p := range policies {
		if p.GetNamespace() != namespace || !MatchPattern(p.GetPattern(), repository) {
			continue
		}
		if best == nil || specificity(p.Pattern) > specificity(best.Pattern) ||
			(specificity(p.Pattern) == specificity(best.Pattern) && p.Pattern < best.Pattern) {
			best = p
		}
	}
	return best
}

// sortPolicies orders policies by namespace and pattern.
func sortPolicies(ps []*berthv1.TrustPolicy) {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Namespace != ps[j].Namespace {
			return ps[i].Namespace < ps[j].Namespace
		}
		return ps[i].Pattern < ps[j].Pattern
	})
}
