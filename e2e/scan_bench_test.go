package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/testimage"
)

// scanBenchPackages is how many dpkg packages the benchmark image holds.
const scanBenchPackages = 400

// writeScanBenchImage writes a ~100 MB image: busybox, a real Go binary
// (berth itself, with its build info), a dpkg database of
// scanBenchPackages packages and 20 MB of other files in 400 files.
func (c *cluster) writeScanBenchImage(ref string) string {
	c.t.Helper()
	files, err := testimage.BusyboxFiles("/usr/bin/busybox")
	if err != nil {
		c.t.Fatal(err)
	}
	bin, err := os.ReadFile(berthBin)
	if err != nil {
		c.t.Fatal(err)
	}
	files = append(files,
		testimage.File{Path: "/usr/local/bin/berth", Mode: 0o755, Content: bin},
		testimage.File{Path: "/etc/os-release", Mode: 0o644, Content: []byte(debOSRelease)})
	var status strings.Builder
	for i := range scanBenchPackages {
		fmt.Fprintf(&status, "Package: pkg%d\nStatus: install ok installed\nSource: src%d\nVersion: 1.%d-1~deb12u1\nArchitecture: amd64\n\n", i, i, i%50)
	}
	files = append(files, testimage.File{Path: "/var/lib/dpkg/status", Mode: 0o644, Content: []byte(status.String())})
	rng := rand.NewChaCha8([32]byte{'s', 'c', 'a', 'n'})
	for i := range 400 {
		data := make([]byte, 50<<10)
		rng.Read(data)
		mode := os.FileMode(0o644)
		if i%10 == 0 {
			mode = 0o755 // executables the Go binary reader opens
		}
		files = append(files, testimage.File{Path: fmt.Sprintf("/opt/data/%03d/file.bin", i), Mode: mode, Content: data})
	}
	var buf bytes.Buffer
	if err := testimage.WriteOCIArchive(&buf, ref, files, testimage.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}}); err != nil {
		c.t.Fatal(err)
	}
	return c.writeFile("scanbench.tar", buf.String())
}

// scanBenchRecords makes n OSV records: one or two per package of the
// image (half of them fixed below its version), Go records for modules
// berth is built with, and the rest for packages the image lacks.
func scanBenchRecords(n int) map[string]string {
	out := map[string]string{}
	add := func(id, eco, name, fixed string) {
		out[id+".json"] = fmt.Sprintf(`{"id":%q,"modified":"2024-05-01T00:00:00Z","aliases":["CVE-%s"],"summary":"benchmark record of %s",`+
			`"affected":[{"package":{"ecosystem":%q,"name":%q},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":%q}]}]}],`+
			`"severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:L/A:N"}]}`, id, id, name, eco, name, fixed)
	}
	for i := range scanBenchPackages {
		add(fmt.Sprintf("DSA-B%d-1", i), "Debian:12", fmt.Sprintf("src%d", i), fmt.Sprintf("1.%d-1", i%50))
		add(fmt.Sprintf("DSA-B%d-2", i), "Debian:12", fmt.Sprintf("src%d", i), fmt.Sprintf("1.%d-1~deb12u0", i%50))
	}
	for _, m := range []string{"google.golang.org/grpc", "go.etcd.io/etcd/server/v3", "golang.org/x/net", "github.com/containerd/containerd/v2", "stdlib"} {
		out["GO-"+m+".json"] = fmt.Sprintf(`{"id":"GO-%s","modified":"2024-05-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":%q},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"99.0.0"}]}]}]}`,
			strings.ReplaceAll(m, "/", "-"), m)
	}
	for i := 0; len(out) < n; i++ {
		add(fmt.Sprintf("DSA-X%d-1", i), "Debian:12", fmt.Sprintf("absent%d", i), "2.0-1")
	}
	return out
}

// BenchmarkScan100MB imports a 10,000-record OSV database, then scans a
// ~100 MB image (SBOM on the node, matching on the server) with `berth
// scan --fresh`, b.N times; it reports the import's time and the scan's
// p50 and p99 (the goal is 5 s or less on two cores).
func BenchmarkScan100MB(b *testing.B) {
	c := newCluster(b)
	c.startAgent("scanbench")
	c.waitScanNode("scanbench")
	archive := c.writeScanBenchImage("scan-bench:1")
	if fi, err := os.Stat(archive); err == nil {
		b.Logf("image archive: %d MB", fi.Size()>>20)
	}
	c.mustBerth("image", "import", archive)
	db := c.writeOSVZip("bench.zip", scanBenchRecords(10000))
	start := time.Now()
	out := c.mustBerth("vulndb", "import", db)
	imported := time.Since(start)
	if !strings.Contains(out, "imported 10000 records") {
		b.Fatalf("import said: %s", out)
	}
	var times []time.Duration
	var last string
	for range b.N {
		start := time.Now()
		last = c.mustBerth("scan", "scan-bench:1", "--fresh")
		times = append(times, time.Since(start))
	}
	first, _, _ := strings.Cut(last, "\n")
	b.Logf("last scan: %s", first)
	b.ReportMetric(float64(imported.Milliseconds()), "import-ms")
	reportPercentiles(b, times)
}
