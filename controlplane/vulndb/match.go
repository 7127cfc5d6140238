package vulndb

import (
	"cmp"
	"regexp"
	"slices"
	"strings"

	"github.com/google/osv-scalibr/semantic"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// DB is a vulnerability database indexed by package: the records of one
// import (a generation).
type DB struct {
	Generation int64
	records    int
	byPackage  map[packageKey][]entry
}

type packageKey struct{ ecosystem, name string }

// entry is one affected package of one record; release is the part of
// its ecosystem after the colon ("12" of "Debian:12"), empty for every
// release.
type entry struct {
	rec     *Record
	aff     *Affected
	release string
}

// New indexes records; withdrawn records are left out.
func New(generation int64, records []*Record) *DB {
	db := &DB{Generation: generation, byPackage: map[packageKey][]entry{}}
	for _, r := range records {
		if r.Withdrawn != nil {
			continue
		}
		db.records++
		for i := range r.Affected {
			a := &r.Affected[i]
			base, release := Ecosystem(a.Package.Ecosystem)
			k := packageKey{base, normalName(base, a.Package.Name)}
			db.byPackage[k] = append(db.byPackage[k], entry{rec: r, aff: a, release: release})
		}
	}
	return db
}

// Records is how many records (not withdrawn) the database holds.
func (db *DB) Records() int { return db.records }

var pythonSeparators = regexp.MustCompile(`[-_.]+`)

// normalName is how names of ecosystem compare: PyPI's by PEP 503, the
// others as written.
func normalName(ecosystem, name string) string {
	if ecosystem == "PyPI" {
		return strings.ToLower(pythonSeparators.ReplaceAllLiteralString(name, "-"))
	}
	return name
}

// Match returns the findings of an SBOM: each record that affects the
// installed version of a package, once per record and package, worst
// first.
func (db *DB) Match(sbom *berthv1.Sbom) []*berthv1.ScanFinding {
	type seen struct{ id, pkg, version string }
	done := map[seen]bool{}
	var out []*berthv1.ScanFinding
	for _, p := range sbom.GetPackages() {
		base, release := Ecosystem(p.Ecosystem)
		for _, e := range db.byPackage[packageKey{base, normalName(base, p.Name)}] {
			if e.release != "" && e.release != release {
				continue
			}
			k := seen{e.rec.ID, p.Name, p.Version}
			if done[k] {
				continue
			}
			hit, fixed := Affects(e.aff, base, p.Version)
			if !hit {
				continue
			}
			done[k] = true
			sev, src := severityOf(e.rec, e.aff)
			out = append(out, &berthv1.ScanFinding{
				Id:               e.rec.ID,
				Aliases:          e.rec.Aliases,
				Package:          p.Name,
				Ecosystem:        p.Ecosystem,
				InstalledVersion: p.Version,
				FixedVersion:     fixed,
				Severity:         sev,
				SeveritySource:   src,
				Summary:          e.rec.Summary,
			})
		}
	}
	SortFindings(out)
	return out
}

// SortFindings orders findings worst first, then by id and package.
func SortFindings(fs []*berthv1.ScanFinding) {
	slices.SortFunc(fs, func(a, b *berthv1.ScanFinding) int {
		return cmp.Or(cmp.Compare(b.Severity, a.Severity), cmp.Compare(a.Id, b.Id), cmp.Compare(a.Package, b.Package), cmp.Compare(a.InstalledVersion, b.InstalledVersion))
	})
}

// Affects says whether version of a package of ecosystem (its base:
// "Debian", "Go") is among a's affected versions: listed in versions, or
// inside one of its ECOSYSTEM or SEMVER ranges, compared by the
// ecosystem's rules (SEMVER ranges by semantic versioning). fixed is the
// lowest fixed version above it in the range that holds it, "" when none
// is known.
func Affects(a *Affected, ecosystem, version string) (hit bool, fixed string) {
	if slices.Contains(a.Versions, version) {
		hit = true
	}
	for _, rg := range a.Ranges {
		var parse func(string) (semantic.Version, error)
		switch rg.Type {
		case RangeEcosystem:
			parse = func(s string) (semantic.Version, error) { return semantic.Parse(s, ecosystem) }
		case RangeSemver:
			parse = func(s string) (semantic.Version, error) { return semantic.ParseSemverVersion(s), nil }
		default:
			continue // GIT ranges name commits, not versions
		}
		in, f, ok := inRange(rg.Events, version, parse)
		if !ok || !in {
			continue
		}
		hit = true
		if f != "" && (fixed == "" || lessThan(parse, f, fixed)) {
			fixed = f
		}
	}
	return hit, fixed
}

// inRange evaluates a range's events as OSV's specification does: sorted
// by version ("0" first), an introduced at or below the version opens
// the range, a fixed at or below it or a last_affected below it closes
// it; a limit at or below it puts the version out. ok is false when a
// version cannot be read by the ecosystem's rules.
func inRange(events []Event, version string, parse func(string) (semantic.Version, error)) (in bool, fixed string, ok bool) {
	v, err := parse(version)
	if err != nil {
		return false, "", false
	}
	type point struct {
		ev   Event
		at   string
		zero bool
	}
	points := make([]point, 0, len(events))
	for _, e := range events {
		at := cmp.Or(e.Introduced, e.Fixed, e.LastAffected, e.Limit)
		points = append(points, point{ev: e, at: at, zero: e.Introduced == "0"})
	}
	var bad bool
	slices.SortStableFunc(points, func(a, b point) int {
		switch {
		case a.zero && b.zero:
			return 0
		case a.zero:
			return -1
		case b.zero:
			return 1
		}
		pa, err := parse(a.at)
		if err != nil {
			bad = true
			return 0
		}
		c, err := pa.CompareStr(b.at)
		if err != nil {
			bad = true
		}
		return c
	})
	if bad {
		return false, "", false
	}
	for _, p := range points {
		if p.zero {
			in = true
			continue
		}
		c, err := v.CompareStr(p.at) // version against the event
		if err != nil {
			return false, "", false
		}
		switch {
		case p.ev.Introduced != "" && c >= 0:
			in = true
		case p.ev.Fixed != "" && c >= 0:
			in = false
		case p.ev.LastAffected != "" && c > 0:
			in = false
		case p.ev.Limit != "" && c >= 0:
			return false, "", true
		}
	}
	if in {
		for _, p := range points {
			if p.ev.Fixed == "" {
				continue
			}
			if c, err := v.CompareStr(p.at); err == nil && c < 0 {
				return true, p.at, true
			}
		}
	}
	return in, "", true
}

// lessThan compares two versions with parse; false when either is
// unreadable.
func lessThan(parse func(string) (semantic.Version, error), a, b string) bool {
	pa, err := parse(a)
	if err != nil {
		return false
	}
	c, err := pa.CompareStr(b)
	return err == nil && c < 0
}

// Blocked returns the findings a gate refuses: those at or above gate,
// unless their id or one of their aliases is in allowed (case does not
// matter). A gate of unspecified refuses nothing, and a finding of
// unknown severity passes every gate.
func Blocked(findings []*berthv1.ScanFinding, gate berthv1.Severity, allowed []string) []*berthv1.ScanFinding {
	if gate == berthv1.Severity_SEVERITY_UNSPECIFIED {
		return nil
	}
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[strings.ToUpper(strings.TrimSpace(a))] = true
	}
	var out []*berthv1.ScanFinding
	for _, f := range findings {
		if f.Severity < gate || f.Severity == berthv1.Severity_SEVERITY_UNSPECIFIED {
			continue
		}
		if ok[strings.ToUpper(f.Id)] || slices.ContainsFunc(f.Aliases, func(a string) bool { return ok[strings.ToUpper(a)] }) {
			continue
		}
		out = append(out, f)
	}
	return out
}
