package e2e

import (
	"bytes"
	"math/rand/v2"
	"testing"

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

// BenchmarkImageFromRegistry measures two machines pulling the same ~50 MB
// image at once from a registry on loopback (no peer holds it), to
// compare with BenchmarkImageFromPeer.
func BenchmarkImageFromRegistry(b *testing.B) {
	reg := startRegistry(b, "", "")
	c := newCluster(b)
	c.startMachine("alpha")
	c.startMachine("beta")
	c.mustBerth("cluster", "settings", "--insecure-registry", reg.host)
	image := reg.host + "/big:1"
	c.mustBerth("image", "import", c.writeBigImageArchive(image), "--node", "alpha")
	c.mustBerth("push", image, "--node", "alpha")
	removeImage(b, "alpha", image)

	b.SetBytes(2 * bigImageBytes)
	b.ResetTimer()
	for range b.N {
		c.mustBerth("pull", image, "--node", "alpha", "--node", "beta")
		b.StopTimer()
		removeImage(b, "alpha", image)
		removeImage(b, "beta", image)
		b.StartTimer()
	}
}
