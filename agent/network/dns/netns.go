package dns

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// inNetNS runs fn on an OS thread that has joined the network namespace at
// path. Sockets fn opens belong to that namespace for their whole life and
// can be used from any goroutine afterwards. (The same as the network
// package's helper, which this package cannot import: that package uses
// this one.)
func inNetNS(path string, fn func() error) error {
	target, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer target.Close()

	done := make(chan error, 1)
	go func() {
		// The thread is left locked on purpose: it has changed namespace,
		// so the runtime must retire it rather than reuse it.
		runtime.LockOSThread()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("enter netns %s: %w", path, err)
			return
		}
		done <- fn()
	}()
	return <-done
}

// netnsID tells network namespaces apart: a namespace made anew at the
// same path is another one.
type netnsID struct{ dev, ino uint64 }

func netnsOf(path string) (netnsID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return netnsID{}, fmt.Errorf("netns %s: %w", path, err)
	}
	return netnsID{dev: st.Dev, ino: st.Ino}, nil
}
