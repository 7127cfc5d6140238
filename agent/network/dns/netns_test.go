package dns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
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
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		tb.Fatal(err)
	}
	f.Close()
	done := make(chan error, 1)
	go func() {
		// Never unlocked: the thread leaves with its namespace.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("unshare: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err := unix.Mount(self, path, "", unix.MS_BIND, ""); err != nil {
			done <- fmt.Errorf("bind-mount %s: %w", path, err)
			return
		}
		done <- loopbackUp()
	}()
	err = <-done
	// Registered after TempDir's removal, so it runs before it.
	tb.Cleanup(func() {
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			tb.Errorf("unmount %s: %v", path, err)
		}
	})
	if err != nil {
		tb.Fatal(err)
	}
	return path
}

// loopbackUp brings up lo in the calling thread's namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
