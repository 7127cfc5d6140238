package vulndb

import (
	"fmt"
	"math"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// SeverityNames are the names users write, lowest first.
var SeverityNames = []string{"low", "medium", "high", "critical"}

// ParseSeverity reads a gate's severity name; "" and "none" are
// unspecified (no gate).
func ParseSeverity(s string) (berthv1.Severity, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "none":
		return berthv1.Severity_SEVERITY_UNSPECIFIED, nil
	case "low":
		return berthv1.Severity_SEVERITY_LOW, nil
	case "medium":
		return berthv1.Severity_SEVERITY_MEDIUM, nil
	case "high":
		return berthv1.Severity_SEVERITY_HIGH, nil
	case "critical":
		return berthv1.Severity_SEVERITY_CRITICAL, nil
	}
	return 0, fmt.Errorf("%q is not a severity; use low, medium, high, critical, or none", s)
}

// SeverityName is how messages and outputs name a severity; "unknown"
// for unspecified.
func SeverityName(s berthv1.Severity) string {
	switch s {
	case berthv1.Severity_SEVERITY_LOW:
		return "low"
	case berthv1.Severity_SEVERITY_MEDIUM:
		return "medium"
	case berthv1.Severity_SEVERITY_HIGH:
		return "high"
	case berthv1.Severity_SEVERITY_CRITICAL:
		return "critical"
	}
	return "unknown"
}

// severityOf rates a record for one affected package, and says from
// where: the words of the affected package's ecosystem_specific or
// database_specific, then the record's database_specific, then the
// highest CVSS v3 or v2 base score among the affected package's and the
// record's vectors. CVSS v4 vectors are not scored. With none of those,
// the severity is unknown (unspecified).
func severityOf(r *Record, a *Affected) (berthv1.Severity, string) {
	for _, f := range []struct {
		src    string
		fields *SpecificFields
	}{
		{"ecosystem_specific", a.EcosystemSpecific},
		{"database_specific", a.DatabaseSpecific},
		{"database_specific", r.DatabaseSpecific},
	} {
		if f.fields == nil {
			continue
		}
		for _, word := range []string{f.fields.Severity, f.fields.Urgency} {
			if s, ok := severityWord(word); ok {
				return s, f.src
			}
		}
	}
	best, src := berthv1.Severity_SEVERITY_UNSPECIFIED, "unknown"
	bestScore := -1.0
	for _, c := range append(append([]CVSS(nil), a.Severity...), r.Severity...) {
		score, ok := cvssScore(c)
		if ok && score > bestScore {
			bestScore, best, src = score, cvssRating(score), "cvss:"+c.Score
		}
	}
	return best, src
}

// severityWord maps the words OSV sources use (GitHub's MODERATE,
// Debian's urgency, Ubuntu's priorities) to a severity.
func severityWord(w string) (berthv1.Severity, bool) {
	switch strings.ToLower(strings.TrimSpace(w)) {
	case "critical":
		return berthv1.Severity_SEVERITY_CRITICAL, true
	case "high", "important":
		return berthv1.Severity_SEVERITY_HIGH, true
	case "medium", "moderate":
		return berthv1.Severity_SEVERITY_MEDIUM, true
	case "low", "negligible", "unimportant":
		return berthv1.Severity_SEVERITY_LOW, true
	}
	return 0, false
}

// cvssRating is the qualitative rating of a base score (CVSS v3's table;
// v2 scores use it too, which rates 9.0 and above critical).
func cvssRating(score float64) berthv1.Severity {
	switch {
	case score >= 9:
		return berthv1.Severity_SEVERITY_CRITICAL
	case score >= 7:
		return berthv1.Severity_SEVERITY_HIGH
	case score >= 4:
		return berthv1.Severity_SEVERITY_MEDIUM
	case score > 0:
		return berthv1.Severity_SEVERITY_LOW
	}
	return berthv1.Severity_SEVERITY_UNSPECIFIED
}

// cvssScore computes the base score of a CVSS v3.x or v2 vector.
func cvssScore(c CVSS) (float64, bool) {
	switch c.Type {
	case "CVSS_V3":
		return cvss3(c.Score)
	case "CVSS_V2":
		return cvss2(c.Score)
	}
	return 0, false
}

func vectorMetrics(v string) map[string]string {
	m := map[string]string{}
	for _, part := range strings.Split(v, "/") {
		if k, val, ok := strings.Cut(part, ":"); ok {
			m[k] = val
		}
	}
	return m
}

// cvss3 is the CVSS v3.1 base score formula.
func cvss3(vector string) (float64, bool) {
	if !strings.HasPrefix(vector, "CVSS:3.") {
		return 0, false
	}
	m := vectorMetrics(vector)
	changed := m["S"] == "C"
	av, ok1 := map[string]float64{"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2}[m["AV"]]
	ac, ok2 := map[string]float64{"L": 0.77, "H": 0.44}[m["AC"]]
	prs := map[string]float64{"N": 0.85, "L": 0.62, "H": 0.27}
	if changed {
		prs = map[string]float64{"N": 0.85, "L": 0.68, "H": 0.5}
	}
	pr, ok3 := prs[m["PR"]]
	ui, ok4 := map[string]float64{"N": 0.85, "R": 0.62}[m["UI"]]
	cia := map[string]float64{"H": 0.56, "L": 0.22, "N": 0}
	c, ok5 := cia[m["C"]]
	i, ok6 := cia[m["I"]]
	a, ok7 := cia[m["A"]]
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) || (m["S"] != "U" && m["S"] != "C") {
		return 0, false
	}
	iss := 1 - (1-c)*(1-i)*(1-a)
	impact := 6.42 * iss
	if changed {
		impact = 7.52*(iss-0.029) - 3.25*math.Pow(iss-0.02, 15)
	}
	if impact <= 0 {
		return 0, true
	}
	exploit := 8.22 * av * ac * pr * ui
	if changed {
		return roundUp(math.Min(1.08*(impact+exploit), 10)), true
	}
	return roundUp(math.Min(impact+exploit, 10)), true
}

// roundUp is CVSS v3.1's Roundup: the smallest one-decimal number at or
// above x, free of floating point noise.
func roundUp(x float64) float64 {
	n := int64(math.Round(x * 100000))
	if n%10000 == 0 {
		return float64(n) / 100000
	}
	return float64(n/10000+1) / 10
}

// cvss2 is the CVSS v2 base score formula.
func cvss2(vector string) (float64, bool) {
	m := vectorMetrics(strings.TrimPrefix(vector, "(")) // some write "(AV:N/...)"
	av, ok1 := map[string]float64{"L": 0.395, "A": 0.646, "N": 1}[m["AV"]]
	ac, ok2 := map[string]float64{"H": 0.35, "M": 0.61, "L": 0.71}[m["AC"]]
	au, ok3 := map[string]float64{"M": 0.45, "S": 0.56, "N": 0.704}[m["Au"]]
	cia := map[string]float64{"N": 0, "P": 0.275, "C": 0.66}
	c, ok4 := cia[m["C"]]
	i, ok5 := cia[m["I"]]
	a, ok6 := cia[strings.TrimSuffix(m["A"], ")")]
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return 0, false
	}
	impact := 10.41 * (1 - (1-c)*(1-i)*(1-a))
	exploit := 20 * av * ac * au
	f := 1.176
	if impact == 0 {
		f = 0
	}
	return math.Round(((0.6*impact)+(0.4*exploit)-1.5)*f*10) / 10, true
}
