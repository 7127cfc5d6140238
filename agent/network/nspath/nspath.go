// Package nspath keeps network namespaces alive at paths (bind mounts, as
// `ip netns` does) and runs code inside them. The node network makes one
// per container; its DNS server opens sockets in them.
package nspath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// Create makes a new network namespace and keeps it alive by
// bind-mounting it at path, so it outlives every process inside it and an
// agent restart. path must not exist.
func Create(path string) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create netns directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create netns mount point: %w", err)
	}
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(path)
		}
	}()

	done := make(chan error, 1)
	// The namespace switch happens on a dedicated, locked OS thread that is
	// never unlocked: the runtime then ends that thread when the goroutine
	// returns, so no other goroutine ever runs in the new namespace.
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("unshare network namespace: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err := unix.Mount(self, path, "", unix.MS_BIND, ""); err != nil {
			done <- fmt.Errorf("bind-mount network namespace at %s: %w", path, err)
			return
		}
		done <- nil
	}()
	return <-done
}

// IsNetNS reports whether path is a mounted network namespace.
func IsNetNS(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("stat netns %s: %w", path, err)
	}
	return st.Type == unix.NSFS_MAGIC, nil
}

// Remove unmounts and deletes the namespace at path. A path that is
// already gone, or was never mounted, is not an error. Processes still in
// the namespace keep it alive; only the name goes.
func Remove(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil &&
		!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		// EINVAL: not a mount point (a crash between create and mount).
		return fmt.Errorf("unmount netns %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", path, err)
	}
	return nil
}

// Do runs fn on an OS thread that has joined the namespace at path.
// Sockets fn opens belong to that namespace for their whole life, so a
// listener made here can be served from any goroutine afterwards.
func Do(path string, fn func() error) error {
	target, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer target.Close()

	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is left locked on purpose: it has changed namespace,
		// so the runtime must retire it rather than reuse it.
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("enter netns %s: %w", path, err)
			return
		}
		done <- fn()
	}()
	return <-done
}

// LoopbackUp brings up the loopback interface inside the namespace at
// path: a couple of ioctls, where the CNI loopback plugin would cost a
// process per container.
func LoopbackUp(path string) error {
	return Do(path, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("loopback: %w", err)
		}
		defer unix.Close(fd)
		ifr, err := unix.NewIfreq("lo")
		if err != nil {
			return fmt.Errorf("loopback: %w", err)
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			return fmt.Errorf("loopback: reading flags: %w", err)
		}
		ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
			return fmt.Errorf("loopback: bringing it up: %w", err)
		}
		return nil
	})
}

// ID tells network namespaces apart: a namespace made anew at the
// same path is another one.
type ID struct{ dev, ino uint64 }

func IDOf(path string) (ID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return ID{}, fmt.Errorf("netns %s: %w", path, err)
	}
	return ID{dev: st.Dev, ino: st.Ino}, nil
}
