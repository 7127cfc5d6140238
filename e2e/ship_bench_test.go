package e2e

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/testimage"
)

// bigLayerSize is the random file that makes the benchmark's image about
// 50 MB (random data does not compress).
const bigLayerSize = 50 << 20

// writeBigImage writes an OCI archive of busybox plus bigLayerSize random
// bytes, named ref, in dir, and returns its path.
func writeBigImage(tb testing.TB, dir, ref string) string {
	tb.Helper()
	files, err := testimage.BusyboxFiles("/usr/bin/busybox")
	if err != nil {
		tb.Skipf("no busybox to build the image: %v", err)
	}
	blob := make([]byte, bigLayerSize)
	if _, err := rand.Read(blob); err != nil {
		tb.Fatal(err)
	}
	files = append(files, testimage.File{Path: "/data/blob", Content: blob})
	path := filepath.Join(dir, "big.tar")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := testimage.WriteOCIArchive(f, ref, files, testimage.Config{Cmd: []string{"sh"}}); err != nil {
		tb.Fatal(err)
	}
	return path
}

// BenchmarkImageFromPeer times a ~50 MB image that only alpha holds
// reaching two other machines through the peers: from `berth apply` of a
// service of one replica per machine to all three running. Each run has
// an image of new random bits, so nothing is cached on beta or gamma.
func BenchmarkImageFromPeer(b *testing.B) {
	c := newCluster(b)
	c.startMachine("alpha")
	c.startMachine("beta")
	c.startMachine("gamma")
	var times []time.Duration
	for i := 0; i < b.N; i++ {
		ref := fmt.Sprintf("localhost/big:%d", i)
		c.mustBerth("image", "import", "--node", "alpha", writeBigImage(b, b.TempDir(), ref))
		c.waitNodeImages("alpha", i+1)
		file := c.writeFile("compose.yaml", fmt.Sprintf(spreadCompose, ref, 3))
		start := time.Now()
		c.mustBerth("apply", "-f", file, "-p", "big")
		c.waitRunning("big/web", 3, 5*time.Minute)
		times = append(times, time.Since(start))
		c.mustBerth("delete", "big")
		c.waitRunning("big/web", 0, time.Minute)
	}
	reportPercentiles(b, times)
}
