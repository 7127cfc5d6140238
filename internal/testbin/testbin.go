// Package testbin readies what the end-to-end suites run: the berth
// binary and the offline test images, built from the repository at root
// the way `make build images` builds them.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Prepare returns the berth binary to test ($BERTH_BIN, else root's
// bin/berth built now) and the busybox test image archive, built into
// root's bin/images by hack/images.sh.
func Prepare(root string) (berth, busyboxImage string, err error) {
	berth = os.Getenv("BERTH_BIN")
	if berth == "" {
		berth = filepath.Join(root, "bin", "berth")
		if err := run(root, "go", "build", "-o", berth, "./cmd/berth"); err != nil {
			return "", "", fmt.Errorf("building berth: %w", err)
		}
	}
	busyboxImage = filepath.Join(root, "bin", "images", "busybox.tar")
	if err := run(root, "bash", "hack/images.sh", filepath.Dir(busyboxImage)); err != nil {
		return "", "", fmt.Errorf("building test images: %w", err)
	}
	return berth, busyboxImage, nil
}

func run(dir, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	return nil
}
