package validation

import (
	"fmt"
	"slices"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/constraint"
)

// Nodes report their platform as Go names it (GOOS and GOARCH), so these
// are the names a platform can match. A name outside them would leave the
// service's tasks pending on every node, so it is refused up front.
var (
	knownOS = []string{
		"aix", "android", "darwin", "dragonfly", "freebsd", "illumos", "ios", "js",
		"linux", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows",
	}
	knownArch = []string{
		"386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le",
		"mipsle", "ppc64", "ppc64le", "riscv64", "s390x", "wasm",
	}
	// archAliases are other common spellings of an architecture, as
	// `uname -m` and image tooling write them.
	archAliases = map[string]string{
		"x86_64":  "amd64",
		"x86-64":  "amd64",
		"aarch64": "arm64",
		"armhf":   "arm",
		"armel":   "arm",
		"i386":    "386",
		"i686":    "386",
		"x86":     "386",
	}
)

// ParsePlatform parses a Compose platform, os/arch[/variant] such as
// linux/amd64 or linux/arm/v7. Names are read case-insensitively and
// common aliases are accepted (x86_64 for amd64, aarch64 for arm64). A
// variant is folded into the architecture ("arm/v7"), which the scheduler
// compares only with nodes that report a variant too; nodes report none
// today, so it never rules one out.
func ParsePlatform(s string) (*berthv1.Platform, error) {
	parts := strings.Split(strings.TrimSpace(s), "/")
	if len(parts) < 2 || len(parts) > 3 || slices.Contains(parts, "") {
		return nil, fmt.Errorf("%q is not os/arch[/variant]; write it like linux/amd64 or linux/arm/v7", s)
	}
	p := &berthv1.Platform{Os: parts[0], Architecture: strings.Join(parts[1:], "/")}
	normalizePlatform(p)
	if err := checkPlatform(p); err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	return p, nil
}

// normalizePlatform lowercases p's names and replaces an architecture's
// alias with the name nodes report, keeping its variant.
func normalizePlatform(p *berthv1.Platform) {
	if p == nil {
		return
	}
	p.Os = strings.ToLower(strings.TrimSpace(p.Os))
	arch, variant, hasVariant := strings.Cut(strings.ToLower(strings.TrimSpace(p.Architecture)), "/")
	if a, ok := archAliases[arch]; ok {
		arch = a
	}
	p.Architecture = arch
	if hasVariant {
		p.Architecture += "/" + variant
	}
}

// checkPlatform checks a platform's names; an empty one matches any, but
// not both. The architecture may carry a variant, like arm/v7.
func checkPlatform(p *berthv1.Platform) error {
	goos := strings.ToLower(p.GetOs())
	arch, variant, hasVariant := strings.Cut(strings.ToLower(p.GetArchitecture()), "/")
	if a, ok := archAliases[arch]; ok {
		arch = a
	}
	switch {
	case goos == "" && arch == "":
		return fmt.Errorf("names neither an operating system nor an architecture; write it like linux/amd64")
	case goos != "" && !slices.Contains(knownOS, goos):
		return fmt.Errorf("unknown operating system %q; use one of %s", p.GetOs(), strings.Join(knownOS, ", "))
	case (arch != "" || hasVariant) && !slices.Contains(knownArch, arch):
		return fmt.Errorf("unknown architecture %q; use one of %s (or x86_64, aarch64)", arch, strings.Join(knownArch, ", "))
	case hasVariant && !isPlatformWord(variant):
		return fmt.Errorf("variant %q is not a name like v7 or v8", variant)
	}
	return nil
}

// isPlatformWord reports whether s is a plain lowercase name, like v8.
func isPlatformWord(s string) bool {
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return false
		}
	}
	return s != ""
}

// platforms checks the platforms a service runs on. Compose sets one, as
// platform:; API clients may list several.
func (v *specValidator) platforms(ps []*berthv1.Platform) {
	for i, p := range ps {
		field := "platform"
		if len(ps) > 1 {
			field = fmt.Sprintf("platform[%d]", i)
		}
		if p == nil {
			v.add(field, "platform is missing")
			continue
		}
		if err := checkPlatform(p); err != nil {
			v.add(field, err.Error())
		}
	}
}

// constraintPlatform returns the platform a constraint on
// node.platform.os or node.platform.arch names, normalized; ok is false
// for a constraint on anything else.
func constraintPlatform(c constraint.Constraint) (p *berthv1.Platform, ok bool) {
	switch c.Key {
	case constraint.KeyOS:
		p = &berthv1.Platform{Os: c.Value}
	case constraint.KeyArch:
		p = &berthv1.Platform{Architecture: c.Value}
	default:
		return nil, false
	}
	normalizePlatform(p)
	return p, true
}

// normalizeConstraints writes the values of constraints on a node's
// platform as nodes report them: lower case, x86_64 as amd64.
func normalizeConstraints(p *berthv1.Placement) {
	for i, expr := range p.GetConstraints() {
		c, err := constraint.Parse(expr)
		if err != nil {
			continue
		}
		pl, ok := constraintPlatform(c)
		if !ok {
			continue
		}
		if c.Value = pl.Os + pl.Architecture; c.Value != "" {
			p.Constraints[i] = c.String()
		}
	}
}
