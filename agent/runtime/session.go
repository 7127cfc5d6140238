package runtime

import (
	"io"
	"time"
)

// TerminalSize is the size of a terminal in character cells.
type TerminalSize struct {
	Width, Height uint32
}

// SessionOptions say how ExecSession runs a command in a container: the
// interactive counterpart of Exec, with streams instead of a buffer.
type SessionOptions struct {
	Cmd []string
	// Env (KEY=VALUE) is added over the container's environment; User
	// ("name", "uid", "name:group" or "uid:gid") and WorkingDir replace the
	// container's when set.
	Env              []string
	User, WorkingDir string
	// TTY runs the command on a terminal of Size; its output then all
	// comes on Stdout, and Stderr is not used.
	TTY  bool
	Size TerminalSize
	// Resize carries new terminal sizes while the command runs; nil when
	// the size never changes.
	Resize <-chan TerminalSize
	// Stdin is the command's input; nil gives it none. The command sees
	// end of input when Stdin returns io.EOF.
	Stdin io.Reader
	// Stdout and Stderr receive the command's output; nil discards it.
	Stdout, Stderr io.Writer
}

// ContainerStats is one container's resource use at one moment.
type ContainerStats struct {
	ID string
	At time.Time
	// CPUUsageNanos is the CPU time the container's processes used so far.
	CPUUsageNanos uint64
	// MemoryBytes is the memory in use, without the page cache the kernel
	// can take back at once (inactive file pages), as `docker stats` shows.
	MemoryBytes uint64
	// MemoryLimitBytes is 0 when the container has no memory limit.
	MemoryLimitBytes uint64
	Pids             uint32
	// NetworkRxBytes and NetworkTxBytes are what the container's network
	// interfaces (loopback aside) received and sent so far; zero when the
	// runtime's network cannot say.
	NetworkRxBytes, NetworkTxBytes uint64
}
