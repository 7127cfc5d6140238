package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// writeCycloneDX writes a scan result as a CycloneDX 1.6 JSON BOM: the
// image as the described container, its packages as components, and the
// findings as vulnerabilities that affect them.
func writeCycloneDX(w io.Writer, r *berthv1.ScanResult) error {
	bom := cdx.NewBOM()
	bom.SerialNumber = "urn:uuid:" + uuidFromDigest(r.Digest)
	bom.Metadata = &cdx.Metadata{
		Timestamp: r.GetSbom().GetCreatedAt().AsTime().UTC().Format(time.RFC3339),
		Component: &cdx.Component{BOMRef: r.Digest, Type: cdx.ComponentTypeContainer, Name: firstImage(r), Version: r.Digest},
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{
			{Type: cdx.ComponentTypeApplication, Name: "berth"},
			{Type: cdx.ComponentTypeLibrary, Name: r.GetSbom().GetGenerator()},
		}},
	}
	refs := map[string]string{} // name@version → bom-ref
	var comps []cdx.Component
	for i, p := range r.GetSbom().GetPackages() {
		ref := fmt.Sprintf("pkg-%d", i+1)
		name := p.Name
		if p.BinaryName != "" {
			name = p.BinaryName
		}
		c := cdx.Component{BOMRef: ref, Type: cdx.ComponentTypeLibrary, Name: name, Version: p.Version, PackageURL: p.Purl}
		props := []cdx.Property{{Name: "berth:ecosystem", Value: p.Ecosystem}}
		if p.Location != "" {
			props = append(props, cdx.Property{Name: "berth:location", Value: p.Location})
		}
		c.Properties = &props
		comps = append(comps, c)
		if _, ok := refs[p.Name+"@"+p.Version]; !ok {
			refs[p.Name+"@"+p.Version] = ref
		}
	}
	bom.Components = &comps
	var vulns []cdx.Vulnerability
	for _, f := range r.Findings {
		v := cdx.Vulnerability{ID: f.Id, Description: f.Summary,
			Ratings: &[]cdx.VulnerabilityRating{{Severity: cdx.Severity(severityWord(f.Severity)), Method: cdx.ScoringMethodOther, Vector: strings.TrimPrefix(f.SeveritySource, "cvss:")}},
		}
		if ref, ok := refs[f.Package+"@"+f.InstalledVersion]; ok {
			v.Affects = &[]cdx.Affects{{Ref: ref}}
		}
		if len(f.Aliases) > 0 {
			var rs []cdx.VulnerabilityReference
			for _, a := range f.Aliases {
				rs = append(rs, cdx.VulnerabilityReference{ID: a})
			}
			v.References = &rs
		}
		if f.FixedVersion != "" {
			v.Recommendation = "upgrade " + f.Package + " to " + f.FixedVersion
		}
		vulns = append(vulns, v)
	}
	if len(vulns) > 0 {
		bom.Vulnerabilities = &vulns
	}
	return cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON).SetPretty(true).Encode(bom)
}

// writeSPDX writes a scan result's SBOM as an SPDX 2.3 JSON document.
func writeSPDX(w io.Writer, r *berthv1.ScanResult) error {
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      firstImage(r),
		DocumentNamespace: "https://berth.invalid/spdx/" + strings.ReplaceAll(r.Digest, ":", "-"),
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: "berth"}, {CreatorType: "Tool", Creator: r.GetSbom().GetGenerator()}},
			Created:  r.GetSbom().GetCreatedAt().AsTime().UTC().Format(time.RFC3339),
		},
	}
	for i, p := range r.GetSbom().GetPackages() {
		name := p.Name
		if p.BinaryName != "" {
			name = p.BinaryName
		}
		id := common.ElementID(fmt.Sprintf("Package-%d", i+1))
		pkg := &spdx.Package{
			PackageName:             name,
			PackageSPDXIdentifier:   id,
			PackageVersion:          p.Version,
			PackageDownloadLocation: "NOASSERTION",
			PackageSourceInfo:       "found in " + p.Location,
		}
		if p.Purl != "" {
			pkg.PackageExternalReferences = []*spdx.PackageExternalReference{{Category: "PACKAGE-MANAGER", RefType: "purl", Locator: p.Purl}}
		}
		doc.Packages = append(doc.Packages, pkg)
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA: common.MakeDocElementID("", "DOCUMENT"), RefB: common.MakeDocElementID("", string(id)), Relationship: "DESCRIBES",
		})
	}
	return spdxjson.Write(doc, w, spdxjson.Indent("  "))
}

func firstImage(r *berthv1.ScanResult) string {
	if len(r.Images) > 0 {
		return r.Images[0]
	}
	return r.Digest
}

// uuidFromDigest makes a BOM serial number from the image digest, so that
// the same image gives the same serial.
func uuidFromDigest(d string) string {
	hex := strings.TrimPrefix(d, "sha256:")
	for len(hex) < 32 {
		hex += "0"
	}
	return hex[0:8] + "-" + hex[8:12] + "-" + hex[12:16] + "-" + hex[16:20] + "-" + hex[20:32]
}
