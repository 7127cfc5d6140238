package vulndb

import (
	"fmt"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// BenchmarkMatch matches an SBOM of 600 packages (400 Debian, 200 Go
// modules) against 10,000 records, two for each package and the rest
// for packages it lacks: the server's part of a scan.
func BenchmarkMatch(b *testing.B) {
	var recs []*Record
	add := func(id, eco, name, fixed string) {
		recs = append(recs, &Record{ID: id, Affected: []Affected{{
			Package: Package{Ecosystem: eco, Name: name},
			Ranges:  []Range{{Type: RangeEcosystem, Events: []Event{{Introduced: "0"}, {Fixed: fixed}}}},
		}}})
	}
	sbom := &berthv1.Sbom{}
	for i := range 400 {
		name := fmt.Sprintf("src%d", i)
		sbom.Packages = append(sbom.Packages, &berthv1.SbomPackage{Name: name, Version: fmt.Sprintf("1.%d-1~deb12u1", i%50), Ecosystem: "Debian:12"})
		add(fmt.Sprintf("DSA-%d-1", i), "Debian:12", name, fmt.Sprintf("1.%d-1", i%50))
		add(fmt.Sprintf("DSA-%d-2", i), "Debian:12", name, fmt.Sprintf("1.%d-1~deb12u0", i%50))
	}
	for i := range 200 {
		name := fmt.Sprintf("example.com/mod%d", i)
		sbom.Packages = append(sbom.Packages, &berthv1.SbomPackage{Name: name, Version: fmt.Sprintf("v1.%d.0", i), Ecosystem: "Go"})
		add(fmt.Sprintf("GO-%d", i), "Go", name, "2.0.0")
	}
	for i := 0; len(recs) < 10000; i++ {
		add(fmt.Sprintf("X-%d", i), "Debian:12", fmt.Sprintf("absent%d", i), "2.0-1")
	}
	db := New(1, recs)
	b.ResetTimer()
	var n int
	for range b.N {
		n = len(db.Match(sbom))
	}
	if n != 600 {
		b.Fatalf("%d findings, want 600", n)
	}
}
