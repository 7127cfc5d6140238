package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/testimage"
	"github.com/chromedp/chromedp"
)

// debOSRelease and debStatus make the test image a Debian 12 as far as
// an SBOM can tell: the package database and the release file are what
// scanners read.
const debOSRelease = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION_CODENAME=bookworm
ID=debian
`

const debStatus = `Package: libssl3
Status: install ok installed
Source: openssl
Version: 3.0.11-1~deb12u1
Architecture: amd64

Package: bash
Status: install ok installed
Version: 5.2.15-2+b2
Architecture: amd64

Package: zlib1g
Status: install ok installed
Source: zlib
Version: 1:1.2.13.dfsg-1
Architecture: amd64

Package: libgone1
Status: deinstall ok config-files
Source: gone
Version: 1.0-1
Architecture: amd64
`

// scanRecords is the test's OSV database: each record says whether the
// image above has it.
var scanRecords = map[string]string{
	// openssl 3.0.11-1~deb12u1 is below the fix (the tilde sorts first).
	"DSA-9001-1.json": `{"id":"DSA-9001-1","modified":"2024-03-01T00:00:00Z","aliases":["CVE-2024-9001"],"summary":"openssl bug",
		"affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.13-1~deb12u1"}]}]}],
		"database_specific":{"severity":"HIGH"}}`,
	// zlib's epoch 1 is above a fix without one: not affected.
	"DSA-9002-1.json": `{"id":"DSA-9002-1","modified":"2024-03-01T00:00:00Z","aliases":["CVE-2024-9002"],
		"affected":[{"package":{"ecosystem":"Debian:12","name":"zlib"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.3-1"}]}]}],
		"database_specific":{"severity":"CRITICAL"}}`,
	// zlib below a fix with the epoch: affected, critical by CVSS.
	"DSA-9003-1.json": `{"id":"DSA-9003-1","modified":"2024-03-02T00:00:00Z","aliases":["CVE-2024-9003"],
		"severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
		"affected":[{"package":{"ecosystem":"Debian:12","name":"zlib"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1:1.2.13.dfsg-1+deb12u1"}]}]}]}`,
	// bash is already fixed.
	"DSA-9004-1.json": `{"id":"DSA-9004-1","modified":"2024-03-01T00:00:00Z","aliases":["CVE-2024-9004"],
		"affected":[{"package":{"ecosystem":"Debian:12","name":"bash"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"5.2.15-2+b1"}]}]}],
		"database_specific":{"severity":"HIGH"}}`,
	// Another release's openssl record.
	"DSA-9005-1.json": `{"id":"DSA-9005-1","modified":"2024-03-01T00:00:00Z",
		"affected":[{"package":{"ecosystem":"Debian:11","name":"openssl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"9.0"}]}]}]}`,
	// A package that was removed (config files left) is not installed.
	"DSA-9006-1.json": `{"id":"DSA-9006-1","modified":"2024-03-01T00:00:00Z",
		"affected":[{"package":{"ecosystem":"Debian:12","name":"gone"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"}]}]}]}`,
	// Medium: under a high gate, passes.
	"DSA-9007-1.json": `{"id":"DSA-9007-1","modified":"2024-03-01T00:00:00Z",
		"affected":[{"package":{"ecosystem":"Debian:12","name":"bash"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"last_affected":"5.2.15-2+b2"}]}]}],
		"database_specific":{"severity":"MEDIUM"}}`,
}

// writeOSVZip writes records as an OSV export zip in the cluster's folder.
func (c *cluster) writeOSVZip(name string, records map[string]string) string {
	c.t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, entry := range slicesSorted(records) {
		w, err := zw.Create(entry)
		if err != nil {
			c.t.Fatal(err)
		}
		w.Write([]byte(records[entry]))
	}
	if err := zw.Close(); err != nil {
		c.t.Fatal(err)
	}
	return c.writeFile(name, buf.String())
}

func slicesSorted(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// writeDebianImage writes the busybox test image with Debian's package
// database and release file, named ref.
func (c *cluster) writeDebianImage(ref string) string {
	c.t.Helper()
	files, err := testimage.BusyboxFiles("/usr/bin/busybox")
	if err != nil {
		c.t.Fatal(err)
	}
	files = append(files,
		testimage.File{Path: "/etc/os-release", Mode: 0o644, Content: []byte(debOSRelease)},
		testimage.File{Path: "/var/lib/dpkg/status", Mode: 0o644, Content: []byte(debStatus)},
	)
	var buf bytes.Buffer
	if err := testimage.WriteOCIArchive(&buf, ref, files, testimage.Config{Cmd: []string{"sleep", "3600"}, Env: []string{"PATH=/bin"}}); err != nil {
		c.t.Fatal(err)
	}
	return c.writeFile(strings.NewReplacer("/", "_", ":", "_").Replace(ref)+".tar", buf.String())
}

type scanJSON struct {
	Digest   string   `json:"digest"`
	Images   []string `json:"images"`
	Findings []struct {
		ID               string   `json:"id"`
		Aliases          []string `json:"aliases"`
		Package          string   `json:"package"`
		InstalledVersion string   `json:"installedVersion"`
		FixedVersion     string   `json:"fixedVersion"`
		Severity         string   `json:"severity"`
	} `json:"findings"`
	DBGeneration string `json:"dbGeneration"`
	Sbom         struct {
		OSID     string `json:"osId"`
		Packages []struct {
			Name       string `json:"name"`
			BinaryName string `json:"binaryName"`
			Version    string `json:"version"`
			Ecosystem  string `json:"ecosystem"`
		} `json:"packages"`
	} `json:"sbom"`
}

func (c *cluster) scanJSON(image string) scanJSON {
	c.t.Helper()
	out := c.mustBerth("scan", image, "-o", "json")
	var r scanJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		c.t.Fatalf("berth scan -o json: %v\n%s", err, out)
	}
	return r
}

func findingIDs(r scanJSON) string {
	var ids []string
	for _, f := range r.Findings {
		ids = append(ids, f.ID+"/"+f.Package+"/"+f.InstalledVersion+"/"+f.FixedVersion+"/"+f.Severity)
	}
	return strings.Join(ids, " ")
}

const scanCompose = `services:
  web:
    image: scan-deb:1
`

const scanComposeAllowed = `services:
  web:
    image: scan-deb:1
    x-berth:
      allow-vulnerabilities: [CVE-2024-9001, DSA-9003-1]
`

// TestScan makes the SBOM of an image whose package database the test
// wrote, matches it against an OSV database the test wrote, and gates
// applies on the findings.
func TestScan(t *testing.T) {
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c := newCluster(t, withServerArgs("--metrics-addr", metricsAddr))
	c.startAgent("scan1")
	c.waitScanNode("scan1")
	c.mustBerth("image", "import", c.writeDebianImage("scan-deb:1"))

	// A database in the wrong format is refused, naming the file and the
	// entry, and nothing is imported.
	bad := map[string]string{"GOOD-1.json": scanRecords["DSA-9001-1.json"], "broken/BAD-1.json": `{"id":"BAD-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"name":"x"}}]}`}
	_, errOut, err := c.berth("vulndb", "import", c.writeOSVZip("bad.zip", bad))
	if err == nil || !strings.Contains(errOut, "bad.zip: entry broken/BAD-1.json record BAD-1: affected[0].package needs an ecosystem and a name; nothing was imported") {
		t.Fatalf("import of a bad database: err %v, stderr:\n%s", err, errOut)
	}
	_, errOut, err = c.berth("vulndb", "import", c.writeFile("notes.txt", "not a database"))
	if err == nil || !strings.Contains(errOut, "notes.txt is not a zip") {
		t.Fatalf("import of a text file: err %v, stderr:\n%s", err, errOut)
	}
	if _, errOut, err := c.berth("vulndb", "status"); err == nil || !strings.Contains(errOut, "no vulnerability database was imported") {
		t.Fatalf("vulndb status after refused imports: err %v, stderr:\n%s", err, errOut)
	}

	// Scanned before any database: the SBOM, no findings.
	r := c.scanJSON("scan-deb:1")
	if r.Sbom.OSID != "debian" || len(r.Sbom.Packages) != 3 || len(r.Findings) != 0 || !strings.HasPrefix(r.Digest, "sha256:") {
		t.Fatalf("scan without a database: %+v", r)
	}

	out := c.mustBerth("vulndb", "import", c.writeOSVZip("debian.zip", scanRecords))
	if !strings.Contains(out, "imported 7 records (Debian 7) from debian.zip as database 1; 1 stored scan results rematched") {
		t.Errorf("import said:\n%s", out)
	}
	out = c.mustBerth("vulndb", "status")
	for _, want := range []string{"Records:", "7", "Debian 7", "debian.zip", "2024-03-02T00:00:00Z"} {
		if !strings.Contains(out, want) {
			t.Errorf("vulndb status lacks %q:\n%s", want, out)
		}
	}

	// Exactly the affected ones; not the fixed, the other release's, nor
	// the removed package's.
	r = c.scanJSON("scan-deb:1")
	want := "DSA-9003-1/zlib/1:1.2.13.dfsg-1/1:1.2.13.dfsg-1+deb12u1/SEVERITY_CRITICAL " +
		"DSA-9001-1/openssl/3.0.11-1~deb12u1/3.0.13-1~deb12u1/SEVERITY_HIGH " +
		"DSA-9007-1/bash/5.2.15-2+b2//SEVERITY_MEDIUM"
	if got := findingIDs(r); got != want {
		t.Errorf("findings:\n%s\nwant:\n%s", got, want)
	}
	table := c.mustBerth("scan", "scan-deb:1")
	for _, w := range []string{"Debian GNU/Linux 12 (bookworm), 3 packages, 3 findings (1 critical, 1 high, 1 medium)", "CVE-2024-9001", "3.0.13-1~deb12u1"} {
		if !strings.Contains(table, w) {
			t.Errorf("scan table lacks %q:\n%s", w, table)
		}
	}
	out = c.mustBerth("describe", "image", "scan-deb:1")
	for _, w := range []string{"Digest:", r.Digest, "Debian GNU/Linux 12 (bookworm)", "3 (read on node scan1 by osv-scalibr v0.5.3", "3 findings (1 critical, 1 high, 1 medium) (database 1", "DSA-9007-1"} {
		if !strings.Contains(out, w) {
			t.Errorf("describe image lacks %q:\n%s", w, out)
		}
	}
	var bom struct {
		BOMFormat  string `json:"bomFormat"`
		Components []struct {
			Name, Version, Purl string
		} `json:"components"`
		Vulnerabilities []struct{ ID string } `json:"vulnerabilities"`
	}
	if err := json.Unmarshal([]byte(c.mustBerth("scan", "scan-deb:1", "-o", "cyclonedx")), &bom); err != nil {
		t.Fatal(err)
	}
	if bom.BOMFormat != "CycloneDX" || len(bom.Components) != 3 || len(bom.Vulnerabilities) != 3 || bom.Components[1].Name != "libssl3" {
		t.Errorf("CycloneDX: %+v", bom)
	}
	var spdx struct {
		SPDXVersion string `json:"spdxVersion"`
		Packages    []struct {
			Name string `json:"name"`
		} `json:"packages"`
	}
	if err := json.Unmarshal([]byte(c.mustBerth("scan", "scan-deb:1", "-o", "spdx")), &spdx); err != nil {
		t.Fatal(err)
	}
	if spdx.SPDXVersion != "SPDX-2.3" || len(spdx.Packages) != 3 {
		t.Errorf("SPDX: %+v", spdx)
	}

	// The gate refuses the apply, naming service, image, digest and the
	// findings; nothing is written.
	c.mustBerth("cluster", "settings", "--block-severity", "high")
	_, errOut, err = c.berth("apply", "-f", c.writeFile("compose.yaml", scanCompose), "-p", "scanned")
	for _, w := range []string{`service "web"`, "image scan-deb:1 (" + r.Digest + ")", "2 findings at or above high (the scan gate of the cluster)",
		"critical CVE-2024-9003 (DSA-9003-1) in zlib 1:1.2.13.dfsg-1, fixed in 1:1.2.13.dfsg-1+deb12u1", "high CVE-2024-9001 (DSA-9001-1) in openssl"} {
		if err == nil || !strings.Contains(errOut, w) {
			t.Errorf("gated apply: err %v, stderr lacks %q:\n%s", err, w, errOut)
		}
	}
	if out := c.mustBerth("get", "apps"); strings.Contains(out, "scanned") {
		t.Errorf("a refused apply wrote its app:\n%s", out)
	}
	// A namespace's own gate wins over the cluster's.
	c.mustBerth("namespace", "update", "default", "--block-severity", "critical")
	_, errOut, err = c.berth("apply", "-f", c.writeFile("compose.yaml", scanCompose), "-p", "scanned", "--dry-run")
	if err == nil || !strings.Contains(errOut, "1 finding at or above critical (the scan gate of namespace default)") {
		t.Errorf("apply under the namespace's gate: err %v, stderr:\n%s", err, errOut)
	}
	c.mustBerth("namespace", "update", "default", "--block-severity", "")

	// Named findings are accepted, and the service runs.
	c.mustBerth("apply", "-f", c.writeFile("compose-allowed.yaml", scanComposeAllowed), "-p", "scanned")
	c.waitRunning("scanned/web", 1, 60*time.Second)
	// The server's metrics count the findings of the image the service
	// runs, by severity.
	body, err := httpGet("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, sev := range []string{"critical", "high", "medium"} {
		w := `berth_image_vulnerability_findings{digest="` + r.Digest + `",image="docker.io/library/scan-deb:1",severity="` + sev + `"} 1`
		if !strings.Contains(body, w) {
			t.Errorf("metrics lack %s:\n%s", w, berthLines(body))
		}
	}
	out = c.mustBerth("describe", "scanned/web")
	for _, w := range []string{"Vulnerabilities:", "3 findings (1 critical, 1 high, 1 medium) in 3 packages (database 1, " + r.Digest + ")", "CVE-2024-9003"} {
		if !strings.Contains(out, w) {
			t.Errorf("describe lacks %q:\n%s", w, out)
		}
	}

	// A newer database rematches the stored SBOM without the node: the
	// openssl record is gone from it.
	next := map[string]string{}
	for k, v := range scanRecords {
		if k != "DSA-9001-1.json" {
			next[k] = v
		}
	}
	out = c.mustBerth("vulndb", "import", c.writeOSVZip("debian-2.zip", next))
	if !strings.Contains(out, "as database 2; 1 stored scan results rematched") {
		t.Errorf("second import said:\n%s", out)
	}
	// scan fails while the gate would refuse the image.
	_, errOut, err = c.berth("scan", "scan-deb:1")
	if err == nil || !strings.Contains(errOut, "1 finding at or above high, which the scan gate of namespace default refuses") {
		t.Errorf("scan under the gate: err %v, stderr:\n%s", err, errOut)
	}
	c.mustBerth("cluster", "settings", "--block-severity", "none")
	r = c.scanJSON("scan-deb:1")
	if got := findingIDs(r); strings.Contains(got, "DSA-9001-1") || !strings.Contains(got, "DSA-9003-1") || r.DBGeneration != "2" {
		t.Errorf("findings after the second import (generation %s): %s", r.DBGeneration, got)
	}
}

// TestScanOnDashboard shows a scanned image's findings count in the
// dashboard's image scans table.
func TestScanOnDashboard(t *testing.T) {
	if _, err := os.Stat(chromiumBin); err != nil {
		t.Skipf("no browser at %s (%v); run hack/setup-host.sh to install chromium", chromiumBin, err)
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c := newCluster(t, withServerArgs("--http-listen", httpAddr))
	c.startAgent("scanweb")
	c.waitScanNode("scanweb")
	c.mustBerth("image", "import", c.writeDebianImage("scan-deb:1"))
	c.mustBerth("vulndb", "import", c.writeOSVZip("debian.zip", scanRecords))
	r := c.scanJSON("scan-deb:1")
	token := strings.TrimSpace(c.mustBerth("token", "create", "scan-e2e", "--role", "viewer", "-q"))

	browser := newBrowser(t)
	ctx, cancel := context.WithTimeout(browser, 90*time.Second)
	defer cancel()
	signIn(t, ctx, httpAddr, token)
	var text string
	var shot []byte
	err := chromedp.Run(ctx,
		chromedp.WaitVisible(`tr[data-digest="`+r.Digest+`"] td[data-findings="3"]`, chromedp.ByQuery),
		chromedp.Text(`tr[data-digest="`+r.Digest+`"]`, &text, chromedp.ByQuery),
		chromedp.CaptureScreenshot(&shot),
	)
	if err != nil {
		t.Fatalf("waiting for the image's scan on the dashboard: %v; page: %s", err, pageState(browser))
	}
	if !strings.Contains(text, "scan-deb:1") || !strings.Contains(text, "3 (1 critical, 1 high, 1 medium)") {
		t.Errorf("the scans row reads %q", text)
	}
	checkNotBlank(t, shot)
}

const apkInstalled = `P:libcrypto3
V:3.1.4-r9
o:openssl
A:x86_64

P:busybox
V:1.36.1-r15
o:busybox
A:x86_64

`

// mixedRecords are Alpine and Go records for the mixed image: Alpine's
// -rN revisions compare as numbers, and the Go binary's toolchain is the
// "stdlib" package.
var mixedRecords = map[string]string{
	"ALPINE-1.json": `{"id":"ALPINE-CVE-2024-8001","modified":"2024-03-01T00:00:00Z","aliases":["CVE-2024-8001"],
		"affected":[{"package":{"ecosystem":"Alpine:v3.19","name":"openssl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.1.4-r10"}]}]}]}`,
	"ALPINE-2.json": `{"id":"ALPINE-CVE-2024-8002","modified":"2024-03-01T00:00:00Z",
		"affected":[{"package":{"ecosystem":"Alpine:v3.19","name":"busybox"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.36.1-r5"}]}]}]}`,
	"GO-1.json": `{"id":"GO-2099-0001","modified":"2024-03-01T00:00:00Z","aliases":["CVE-2099-0001"],
		"affected":[{"package":{"ecosystem":"Go","name":"stdlib"},"ranges":[{"type":"SEMVER","events":[{"introduced":"1.26.0"},{"fixed":"1.26.99"}]}]}]}`,
	"GO-2.json": `{"id":"GO-2020-0002","modified":"2024-03-01T00:00:00Z",
		"affected":[{"package":{"ecosystem":"Go","name":"stdlib"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.20.0"}]}]}]}`,
}

// TestScanAlpineAndGo scans an image with an apk database and a Go
// binary (the e2e test server): Alpine's and Go's version rules.
func TestScanAlpineAndGo(t *testing.T) {
	c := newCluster(t)
	c.startAgent("scan2")
	c.waitScanNode("scan2")
	testapp, err := os.ReadFile(filepath.Join(filepath.Dir(busyboxImage), "testapp"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := testimage.BusyboxFiles("/usr/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files,
		testimage.File{Path: "/etc/os-release", Mode: 0o644, Content: []byte("ID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME=\"Alpine Linux v3.19\"\n")},
		testimage.File{Path: "/lib/apk/db/installed", Mode: 0o644, Content: []byte(apkInstalled)},
		testimage.File{Path: "/usr/local/bin/testapp", Mode: 0o755, Content: testapp})
	var buf bytes.Buffer
	if err := testimage.WriteOCIArchive(&buf, "scan-mixed:1", files, testimage.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}}); err != nil {
		t.Fatal(err)
	}
	c.mustBerth("image", "import", c.writeFile("mixed.tar", buf.String()))
	c.mustBerth("vulndb", "import", c.writeOSVZip("mixed.zip", mixedRecords))
	r := c.scanJSON("scan-mixed:1")
	got := findingIDs(r)
	for _, w := range []string{"ALPINE-CVE-2024-8001/openssl/3.1.4-r9/3.1.4-r10/", "GO-2099-0001/stdlib/"} {
		if !strings.Contains(got, w) {
			t.Errorf("findings lack %s: %s", w, got)
		}
	}
	for _, w := range []string{"ALPINE-CVE-2024-8002", "GO-2020-0002"} {
		if strings.Contains(got, w) {
			t.Errorf("findings have %s, which the image is fixed for: %s", w, got)
		}
	}
	var ecos []string
	for _, p := range r.Sbom.Packages {
		ecos = append(ecos, p.Ecosystem+":"+p.Name)
	}
	if !slices.Contains(ecos, "Go:stdlib") || !slices.Contains(ecos, "Alpine:v3.19:busybox") {
		t.Errorf("SBOM packages: %v", ecos)
	}
}

// waitScanNode waits until node is ready (its conditions reported and
// passing): scans run only on ready nodes.
func (c *cluster) waitScanNode(node string) {
	c.t.Helper()
	eventually(c.t, 60*time.Second, func() (bool, string) {
		st := c.nodeStatus(node)
		return st == "ready", "node " + node + " is " + st + ", not ready"
	})
}
