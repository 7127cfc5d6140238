// Package vulndb is Berth's vulnerability database: OSV records checked
// and stored compactly, an index by package, and the matching of an
// image's SBOM against it. It is pure code: records and SBOMs in,
// findings out; the API server stores what it makes.
package vulndb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Record is an OSV record (https://ossf.github.io/osv-schema/), only the
// fields matching and findings use: what is stored is this, re-encoded.
type Record struct {
	ID               string          `json:"id"`
	Modified         time.Time       `json:"modified"`
	Withdrawn        *time.Time      `json:"withdrawn,omitempty"`
	Aliases          []string        `json:"aliases,omitempty"`
	Summary          string          `json:"summary,omitempty"`
	Severity         []CVSS          `json:"severity,omitempty"`
	Affected         []Affected      `json:"affected,omitempty"`
	DatabaseSpecific *SpecificFields `json:"database_specific,omitempty"`
}

// CVSS is one entry of a record's severity list.
type CVSS struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

// SpecificFields are the parts of database_specific and
// ecosystem_specific that say how severe a record is.
type SpecificFields struct {
	Severity string `json:"severity,omitempty"`
	// Urgency is how Debian's tracker rates a record.
	Urgency string `json:"urgency,omitempty"`
}

// Affected is one package a record affects, and which of its versions.
type Affected struct {
	Package           Package         `json:"package"`
	Ranges            []Range         `json:"ranges,omitempty"`
	Versions          []string        `json:"versions,omitempty"`
	Severity          []CVSS          `json:"severity,omitempty"`
	EcosystemSpecific *SpecificFields `json:"ecosystem_specific,omitempty"`
	DatabaseSpecific  *SpecificFields `json:"database_specific,omitempty"`
}

// Package names a package in an OSV ecosystem ("Debian:12", "Go").
type Package struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
	Purl      string `json:"purl,omitempty"`
}

// Range is a range of affected versions: events in the range type's
// order.
type Range struct {
	Type   string  `json:"type"`
	Events []Event `json:"events"`
}

// Event is one edge of a range: exactly one field is set.
type Event struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// Range types.
const (
	RangeEcosystem = "ECOSYSTEM"
	RangeSemver    = "SEMVER"
	RangeGit       = "GIT"
)

// specificFields decodes a database_specific or ecosystem_specific object,
// whose other keys are free-form; a severity that is not a string is left
// out.
func (s *SpecificFields) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return errors.New("must be an object")
	}
	_ = json.Unmarshal(raw["severity"], &s.Severity)
	_ = json.Unmarshal(raw["urgency"], &s.Urgency)
	return nil
}

// Parse reads one OSV record (one JSON file of an OSV export) and checks
// what matching relies on. The error says which field is wrong and how,
// without the entry's name, which the caller adds.
func Parse(data []byte) (*Record, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return nil, errors.New("is not a JSON object; an OSV export holds one JSON record per file")
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("is not an OSV record: %v", simplifyJSONError(err))
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	return &r, nil
}

func (r *Record) check() error {
	if strings.TrimSpace(r.ID) == "" {
		return errors.New(`has no "id"; an OSV record names itself (like "GHSA-xxxx" or "DSA-1234-1")`)
	}
	if r.Modified.IsZero() {
		return fmt.Errorf(`record %s has no "modified" time; OSV records carry one (RFC 3339)`, r.ID)
	}
	for i, a := range r.Affected {
		field := fmt.Sprintf("record %s: affected[%d]", r.ID, i)
		if a.Package.Ecosystem == "" || a.Package.Name == "" {
			if hasOnlyGitRanges(a) {
				continue
			}
			return fmt.Errorf("%s.package needs an ecosystem and a name", field)
		}
		for j, rg := range a.Ranges {
			rfield := fmt.Sprintf("%s.ranges[%d]", field, j)
			switch rg.Type {
			case RangeEcosystem, RangeSemver, RangeGit:
			default:
				return fmt.Errorf("%s.type %q is not a range type; use ECOSYSTEM, SEMVER or GIT", rfield, rg.Type)
			}
			if len(rg.Events) == 0 {
				return fmt.Errorf("%s has no events", rfield)
			}
			for k, e := range rg.Events {
				if n := e.count(); n != 1 {
					return fmt.Errorf("%s.events[%d] sets %d of introduced, fixed, last_affected and limit; set exactly one", rfield, k, n)
				}
			}
		}
	}
	return nil
}

func hasOnlyGitRanges(a Affected) bool {
	for _, rg := range a.Ranges {
		if rg.Type != RangeGit {
			return false
		}
	}
	return len(a.Ranges) > 0
}

func (e Event) count() int {
	n := 0
	for _, s := range []string{e.Introduced, e.Fixed, e.LastAffected, e.Limit} {
		if s != "" {
			n++
		}
	}
	return n
}

// simplifyJSONError keeps a decoding error short: which field and type.
func simplifyJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q must be %s, not a JSON %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
	}
	return err.Error()
}

func jsonKind(goKind string) string {
	switch goKind {
	case "slice":
		return "a list"
	case "struct", "map", "ptr":
		return "an object"
	case "string":
		return "a string"
	}
	return goKind
}

// Ecosystem splits an OSV ecosystem into its base and release ("Debian:12"
// is "Debian" and "12").
func Ecosystem(s string) (base, release string) {
	base, release, _ = strings.Cut(s, ":")
	return base, release
}
