package vulndb

import (
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func rng(typ string, events ...Event) Range { return Range{Type: typ, Events: events} }
func intro(v string) Event                  { return Event{Introduced: v} }
func fix(v string) Event                    { return Event{Fixed: v} }
func last(v string) Event                   { return Event{LastAffected: v} }
func limit(v string) Event                  { return Event{Limit: v} }

// TestAffects checks the version rules of each ecosystem through ranges.
func TestAffects(t *testing.T) {
	for _, c := range []struct {
		name      string
		ecosystem string
		aff       Affected
		version   string
		hit       bool
		fixed     string
	}{
		// Debian: epochs outrank everything, ~ sorts before anything.
		{"debian below fix", "Debian", Affected{Ranges: []Range{rng("ECOSYSTEM", intro("0"), fix("3.0.11-1~deb12u2"))}}, "3.0.11-1~deb12u1", true, "3.0.11-1~deb12u2"},
		{"debian at fix", "Debian", Affected{Ranges: []Range{rng("ECOSYSTEM", intro("0"), fix("3.0.11-1~deb12u2"))}}, "3.0.11-1~deb12u2", false, ""},
		{"debian tilde before release", "Debian", Affected{Ranges: []Range{rng("ECOSYSTEM", intro("0"), fix("1.0-1"))}}, "1.0~rc1-1", true, "1.0-1"},
		{"debian epoch above fix", "Debian", Affected{Ranges: []Range{rng("ECOSYSTEM", intro("0"), fix("2.0-1"))}}, "1:1.0-1", false, ""},
		{"debian epoch fix above plain", "Debian", Affected{Ranges: []Range{rng("ECOSYSTEM", intro("0"), fix("1:1.0-1"))}}, "9.9-1", true, "1:1.0-1"},
		{"debian revision", "Debian", Affected{Ranges: []Range{rng("ECOSYSTEM", intro("0"), fix("5.2.15-2+b3"))}}, "5.2.15-2+b2", true, "5.2.15-2+b3"},
		// Alpine: -rN revisions compare as numbers.
		{"alpine r9 below r10", "Alpine", Affected{Ranges: []Range{rng("ECOSYSTEM", intro("0"), fix("3.1.4-r10"))}}, "3.1.4-r9", true, "3.1.4-r10"},
		{"alpine r10 fixed", "Alpine", Affected{Ranges: []Range{rng("ECOSYSTEM", intro("0"), fix("3.1.4-r5"))}}, "3.1.4-r10", false, ""},
		{"alpine suffix _rc", "Alpine", Affected{Ranges: []Range{rng("ECOSYSTEM", intro("0"), fix("1.2.0"))}}, "1.2.0_rc1-r0", true, "1.2.0"},
		// Semantic versioning: pre-releases come before the release.
		{"npm prerelease before release", "npm", Affected{Ranges: []Range{rng("SEMVER", intro("1.0.0"), fix("1.2.0"))}}, "1.2.0-beta.1", true, "1.2.0"},
		{"npm introduced later", "npm", Affected{Ranges: []Range{rng("SEMVER", intro("1.0.0"), fix("1.2.0"))}}, "0.9.9", false, ""},
		{"npm 1.10 above 1.9", "npm", Affected{Ranges: []Range{rng("SEMVER", intro("0"), fix("1.10.0"))}}, "1.9.0", true, "1.10.0"},
		// Go: v prefixes and pseudo-versions.
		{"go pseudo-version below fix", "Go", Affected{Ranges: []Range{rng("SEMVER", intro("0"), fix("0.17.0"))}}, "v0.0.0-20210226172049-e18ecbb05110", true, "0.17.0"},
		{"go v prefix at fix", "Go", Affected{Ranges: []Range{rng("SEMVER", intro("0"), fix("0.17.0"))}}, "v0.17.0", false, ""},
		{"go stdlib two ranges", "Go", Affected{Ranges: []Range{rng("SEMVER", intro("0"), fix("1.21.11"), intro("1.22.0"), fix("1.22.4"))}}, "1.22.1", true, "1.22.4"},
		{"go between ranges", "Go", Affected{Ranges: []Range{rng("SEMVER", intro("0"), fix("1.21.11"), intro("1.22.0"), fix("1.22.4"))}}, "1.21.12", false, ""},
		// PyPI: PEP 440 (rc before release, post after).
		{"pypi rc before fix", "PyPI", Affected{Ranges: []Range{rng("ECOSYSTEM", intro("2.0"), fix("2.1"))}}, "2.1rc1", true, "2.1"},
		{"pypi post after fix", "PyPI", Affected{Ranges: []Range{rng("ECOSYSTEM", intro("2.0"), fix("2.1"))}}, "2.1.post1", false, ""},
		// last_affected, limit, versions lists.
		{"last_affected at", "npm", Affected{Ranges: []Range{rng("SEMVER", intro("0"), last("2.3.4"))}}, "2.3.4", true, ""},
		{"last_affected above", "npm", Affected{Ranges: []Range{rng("SEMVER", intro("0"), last("2.3.4"))}}, "2.3.5", false, ""},
		{"limit", "npm", Affected{Ranges: []Range{rng("SEMVER", intro("0"), limit("2.0.0"))}}, "2.0.0", false, ""},
		{"versions list", "PyPI", Affected{Versions: []string{"1.0", "1.1"}}, "1.1", true, ""},
		{"versions list miss", "PyPI", Affected{Versions: []string{"1.0", "1.1"}}, "1.2", false, ""},
		{"git range ignored", "Go", Affected{Ranges: []Range{rng("GIT", intro("abc"), fix("def"))}}, "1.0.0", false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			hit, fixed := Affects(&c.aff, c.ecosystem, c.version)
			if hit != c.hit || fixed != c.fixed {
				t.Errorf("Affects(%s %q) = %v, %q; want %v, %q", c.ecosystem, c.version, hit, fixed, c.hit, c.fixed)
			}
		})
	}
}

func testDB(t *testing.T, records ...string) *DB {
	t.Helper()
	var recs []*Record
	for _, s := range records {
		r, err := Parse([]byte(s))
		if err != nil {
			t.Fatalf("Parse(%s): %v", s, err)
		}
		recs = append(recs, r)
	}
	return New(1, recs)
}

func TestMatch(t *testing.T) {
	db := testDB(t,
		`{"id":"DSA-1-1","modified":"2024-01-01T00:00:00Z","aliases":["CVE-2024-0001"],"affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.13-1~deb12u1"}]}]}],"database_specific":{"severity":"HIGH"}}`,
		`{"id":"DSA-2-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Debian:11","name":"openssl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"9.9"}]}]}]}`,
		`{"id":"DSA-3-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Debian:12","name":"bash"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"5.2.15-2+b1"}]}]}]}`,
		`{"id":"GHSA-x","modified":"2024-01-01T00:00:00Z","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],"affected":[{"package":{"ecosystem":"PyPI","name":"Django"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"4.2.1"}]}]}]}`,
		`{"id":"OLD-1","modified":"2024-01-01T00:00:00Z","withdrawn":"2024-02-01T00:00:00Z","affected":[{"package":{"ecosystem":"Debian:12","name":"bash"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"}]}]}]}`,
	)
	sbom := &berthv1.Sbom{Packages: []*berthv1.SbomPackage{
		{Name: "openssl", BinaryName: "libssl3", Version: "3.0.11-1~deb12u1", Ecosystem: "Debian:12"},
		{Name: "openssl", BinaryName: "openssl", Version: "3.0.11-1~deb12u1", Ecosystem: "Debian:12"},
		{Name: "bash", Version: "5.2.15-2+b2", Ecosystem: "Debian:12"},
		{Name: "django", Version: "4.1", Ecosystem: "PyPI"},
	}}
	got := db.Match(sbom)
	var lines []string
	for _, f := range got {
		lines = append(lines, f.Id+" "+f.Package+" "+f.InstalledVersion+" fixed:"+f.FixedVersion+" "+SeverityName(f.Severity))
	}
	want := []string{
		"GHSA-x django 4.1 fixed:4.2.1 critical",
		"DSA-1-1 openssl 3.0.11-1~deb12u1 fixed:3.0.13-1~deb12u1 high",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if db.Records() != 4 {
		t.Errorf("records = %d, want 4 (the withdrawn one left out)", db.Records())
	}
}

func TestSeverity(t *testing.T) {
	for _, c := range []struct {
		record string
		want   string
		src    string
	}{
		{`{"id":"A","modified":"2024-01-01T00:00:00Z","database_specific":{"severity":"MODERATE"}}`, "medium", "database_specific"},
		{`{"id":"A","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Ubuntu:22.04:LTS","name":"x"},"ecosystem_specific":{"severity":"low"}}]}`, "low", "ecosystem_specific"},
		{`{"id":"A","modified":"2024-01-01T00:00:00Z","database_specific":{"urgency":"unimportant"}}`, "low", "database_specific"},
		{`{"id":"A","modified":"2024-01-01T00:00:00Z","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"}]}`, "medium", "cvss:CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"},
		{`{"id":"A","modified":"2024-01-01T00:00:00Z","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"}]}`, "high", "cvss:CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"},
		{`{"id":"A","modified":"2024-01-01T00:00:00Z","severity":[{"type":"CVSS_V2","score":"AV:N/AC:L/Au:N/C:P/I:P/A:P"}]}`, "high", "cvss:AV:N/AC:L/Au:N/C:P/I:P/A:P"},
		{`{"id":"A","modified":"2024-01-01T00:00:00Z","severity":[{"type":"CVSS_V4","score":"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}]}`, "unknown", "unknown"},
		{`{"id":"A","modified":"2024-01-01T00:00:00Z"}`, "unknown", "unknown"},
	} {
		r, err := Parse([]byte(c.record))
		if err != nil {
			t.Fatal(err)
		}
		aff := &Affected{}
		if len(r.Affected) > 0 {
			aff = &r.Affected[0]
		}
		sev, src := severityOf(r, aff)
		if SeverityName(sev) != c.want || src != c.src {
			t.Errorf("severity of %s = %s (%s), want %s (%s)", c.record, SeverityName(sev), src, c.want, c.src)
		}
	}
}

func TestCVSS3Scores(t *testing.T) {
	for vector, want := range map[string]float64{
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H": 9.8,
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N": 6.1,
		"CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N": 5.9,
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H": 10,
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N": 0,
	} {
		got, ok := cvss3(vector)
		if !ok || got != want {
			t.Errorf("cvss3(%s) = %v, %v; want %v", vector, got, ok, want)
		}
	}
	if _, ok := cvss3("CVSS:3.1/AV:X"); ok {
		t.Error("a broken vector was scored")
	}
}

func TestBlocked(t *testing.T) {
	fs := []*berthv1.ScanFinding{
		{Id: "DSA-1", Aliases: []string{"CVE-2024-1"}, Severity: berthv1.Severity_SEVERITY_CRITICAL},
		{Id: "DSA-2", Aliases: []string{"CVE-2024-2"}, Severity: berthv1.Severity_SEVERITY_HIGH},
		{Id: "DSA-3", Severity: berthv1.Severity_SEVERITY_MEDIUM},
		{Id: "DSA-4", Severity: berthv1.Severity_SEVERITY_UNSPECIFIED},
	}
	ids := func(fs []*berthv1.ScanFinding) string {
		var s []string
		for _, f := range fs {
			s = append(s, f.Id)
		}
		return strings.Join(s, ",")
	}
	for _, c := range []struct {
		gate    berthv1.Severity
		allowed []string
		want    string
	}{
		{berthv1.Severity_SEVERITY_UNSPECIFIED, nil, ""},
		{berthv1.Severity_SEVERITY_HIGH, nil, "DSA-1,DSA-2"},
		{berthv1.Severity_SEVERITY_HIGH, []string{"cve-2024-1"}, "DSA-2"},
		{berthv1.Severity_SEVERITY_HIGH, []string{"DSA-2", "CVE-2024-1"}, ""},
		{berthv1.Severity_SEVERITY_LOW, nil, "DSA-1,DSA-2,DSA-3"},
		{berthv1.Severity_SEVERITY_CRITICAL, nil, "DSA-1"},
	} {
		if got := ids(Blocked(fs, c.gate, c.allowed)); got != c.want {
			t.Errorf("Blocked(gate %s, allowed %v) = %s, want %s", SeverityName(c.gate), c.allowed, got, c.want)
		}
	}
}

func TestParseRefusesWrongFormat(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`[1,2]`, "not a JSON object"},
		{`{"id": 5}`, `field "id" must be a string`},
		{`{"name":"x"}`, `has no "id"`},
		{`{"id":"A"}`, `no "modified"`},
		{`{"id":"A","modified":"yesterday"}`, "not an OSV record"},
		{`{"id":"A","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"name":"x"}}]}`, "affected[0].package needs an ecosystem"},
		{`{"id":"A","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"x"},"ranges":[{"type":"RANGE","events":[{"introduced":"0"}]}]}]}`, `affected[0].ranges[0].type "RANGE" is not a range type`},
		{`{"id":"A","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"x"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0","fixed":"1"}]}]}]}`, "events[0] sets 2"},
	} {
		_, err := Parse([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%s) = %v, want an error with %q", c.in, err, c.want)
		}
	}
}

func TestChunksRoundTrip(t *testing.T) {
	var recs []*Record
	for i := range 3000 {
		r, err := Parse([]byte(`{"id":"R-` + strings.Repeat("x", i%7) + `","modified":"2024-01-01T00:00:00Z","summary":"` + strings.Repeat("s", 2000) + `","affected":[{"package":{"ecosystem":"npm","name":"p"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.0"}]}]}]}`))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	chunks, err := Encode(recs)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range chunks {
		if len(c.Gzip) > MaxChunkBytes {
			t.Errorf("chunk of %d bytes, over %d", len(c.Gzip), MaxChunkBytes)
		}
		back, err := Decode(c.Gzip)
		if err != nil {
			t.Fatal(err)
		}
		if len(back) != c.Count {
			t.Errorf("chunk decodes to %d records, says %d", len(back), c.Count)
		}
		n += len(back)
	}
	if n != len(recs) || len(chunks) < 2 {
		t.Errorf("%d records in %d chunks, want %d in several", n, len(chunks), len(recs))
	}
}
