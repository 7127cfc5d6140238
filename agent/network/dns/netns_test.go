package dns

import (
	"github.com/berthproject/berth/agent/network/nspath"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives the tests: every
// container's server starts goroutines that Close must end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root to create network namespaces")
	}
}

// newNetNS makes a network namespace with its loopback up, mounted in a
// directory of the test, and removes it when the test ends.
func newNetNS(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "netns")
	err := nspath.Create(path)
	// Registered after TempDir's removal, so it runs before it.
	tb.Cleanup(func() {
		if err := nspath.Remove(path); err != nil {
			tb.Errorf("remove %s: %v", path, err)
		}
	})
	if err == nil {
		err = nspath.LoopbackUp(path)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return path
}
