package e2e

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/testimage"
)

// bigImageBytes is the size of the payload of the benchmark image: about
// 50 MB that do not compress, so the transfer is what is measured.
const bigImageBytes = 50 << 20

// writeBigImageArchive writes the busybox test image plus a 50 MB file of
// seeded random bytes (the same bits on every run), named ref.
func (c *cluster) writeBigImageArchive(ref string) string {
	c.t.Helper()
	files, err := testimage.BusyboxFiles("/usr/bin/busybox")
	if err != nil {
		c.t.Fatal(err)
	}
	payload := make([]byte, bigImageBytes)
	rng := rand.NewChaCha8([32]byte{'b', 'e', 'r', 't', 'h'})
	rng.Read(payload)
	files = append(files, testimage.File{Path: "/data/payload", Content: payload})
	var buf bytes.Buffer
	if err := testimage.WriteOCIArchive(&buf, ref, files, testimage.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}}); err != nil {
		c.t.Fatal(err)
	}
	return c.writeFile("big.tar", buf.String())
}

// BenchmarkImageToTwoNodes times getting a ~50 MB image onto beta and
// gamma at once with `berth pull`, in one run: from alpha, the only node
// that holds it (peer), and from a registry on loopback once alpha no
// longer holds it (registry). Both report p50 and p99 over b.N pulls; the
// image is removed from beta and gamma between pulls.
func BenchmarkImageToTwoNodes(b *testing.B) {
	reg := startRegistry(b, "", "")
	c := newCluster(b)
	for _, m := range []string{"alpha", "beta", "gamma"} {
		c.startMachine(m)
	}
	c.mustBerth("cluster", "settings", "--insecure-registry", reg.host)
	image := reg.host + "/big:1"
	c.mustBerth("image", "import", c.writeBigImageArchive(image), "--node", "alpha")
	c.waitNodeImages("alpha", 1)

	pullTimes := func(b *testing.B) {
		var times []time.Duration
		for range b.N {
			start := time.Now()
			c.mustBerth("pull", image, "--node", "beta", "--node", "gamma")
			times = append(times, time.Since(start))
			removeImage(b, "beta", image)
			removeImage(b, "gamma", image)
		}
		b.SetBytes(2 * bigImageBytes)
		reportPercentiles(b, times)
	}
	b.Run("peer", pullTimes)
	c.mustBerth("push", image, "--node", "alpha")
	removeImage(b, "alpha", image)
	b.Run("registry", pullTimes)
}
