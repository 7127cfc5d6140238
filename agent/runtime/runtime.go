// Package runtime is the seam between the agent and what runs its
// containers: the Runtime interface the worker drives and the types it
// speaks (ContainerSpec, Status, Exit, Image, ...). Package
// runtime/containerd implements it on a containerd daemon, package
// runtime/fake in memory for unit and scale tests.
package runtime

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/berthproject/berth/agent/files"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// Port is a published port: Target inside the container, Published on the host.
type Port struct {
	Target, Published uint32
	Protocol, HostIP  string
}

// ContainerSpec is what the worker asks the runtime to create.
type ContainerSpec struct {
	ID string // task id; also the containerd container id
	// Image is the image reference as the user wrote it ("busybox",
	// "localhost/busybox:latest"); it is normalized before use.
	Image string
	// Command and Entrypoint have Compose semantics: Entrypoint overrides
	// the image ENTRYPOINT (and clears the image CMD), Command overrides CMD.
	Command, Entrypoint []string
	Env                 []string // KEY=VALUE, over the image's env
	WorkingDir, User    string
	// Labels are the user's labels, set on the container; the runtime adds
	// its own berth.* labels.
	Labels map[string]string
	// Ports are the ports published on the node that runs the container
	// (host mode); ingress ports are the node network's business.
	Ports                  []Port
	MilliCPUs, MemoryBytes int64  // cgroup limits, 0 = none
	StopSignal             string // default SIGTERM
	// Networks are the container's places on the cluster's networks, in
	// order; empty with no network runs it in the host's network.
	Networks []NetworkInterface
	// Hostname is the container's host name; empty is ID (cut to 63 bytes).
	Hostname string
	// DNS configures the container's resolver.
	DNS DNSConfig
	// Namespace is the task's namespace, where Mounts' named volumes are.
	Namespace string
	// Mounts are the container's volumes, node paths and tmpfs, in the
	// order of the service's file.
	Mounts []Mount
	// Files are the container's secret and config files, mounted
	// read-only at their targets; their data never touches the disk.
	Files []files.File
	// Options are the container's process and kernel options.
	Options ContainerOptions
	// Log bounds the container's log files; zero fields take the node's
	// defaults.
	Log LogLimits
}

// LogLimits bound a container's log files (json-file max-size and
// max-file). A zero field means the node's default.
type LogLimits struct {
	// MaxSize is the size in bytes past which the file is rotated.
	MaxSize int64
	// MaxFiles is how many files are kept, the one being written included.
	MaxFiles int
}

// NetworkInterface is a container's place on one network.
type NetworkInterface struct {
	NetworkID, Network string
	// Address is the container's address with the network's prefix
	// length ("10.128.0.5/24").
	Address  string
	Internal bool
}

// DNSConfig is what goes into a container's resolv.conf and hosts files.
type DNSConfig struct {
	// Search are the search domains (the app first).
	Search []string
	// Servers are resolvers for names the cluster does not know; empty
	// uses the node's.
	Servers []string
	// Options are resolv.conf options.
	Options []string
	// ExtraHosts are hosts entries beside the container's own.
	ExtraHosts []HostEntry
}

// HostEntry is one /etc/hosts line.
type HostEntry struct{ Hostname, Address string }

// State is where a container is in its life.
type State int

// The states of a container.
const (
	StateCreated State = iota
	StateRunning
	StateStopped
)

// String returns the state in lower case, as users see it.
func (s State) String() string {
	switch s {
	case StateCreated:
		return "created"
	case StateRunning:
		return "running"
	case StateStopped:
		return "stopped"
	default:
		return "unknown"
	}
}

// Status is what the runtime knows of one container.
type Status struct {
	ID       string
	State    State
	Pid      uint32
	ExitCode int32
	ExitedAt time.Time
	// OOMKilled is set on a stopped container with a non-zero exit code
	// when the kernel killed one of its processes for lack of memory
	// (usually for going over MemoryBytes).
	OOMKilled bool
	// Image is the normalized name of the image the container was made
	// from, so image cleanup can keep the images in use.
	Image   string
	Address string // container IP; empty on the host network
	Ports   []Port
	Labels  map[string]string
}

// Exit is how a container's process ended. Err is set when the exit could
// not be observed (the wait was cancelled or the runtime failed).
type Exit struct {
	Code int32
	At   time.Time
	// OOMKilled is set with a non-zero Code when the kernel killed one of
	// the container's processes for lack of memory (usually for going over
	// ContainerSpec.MemoryBytes); the process then usually ends with 137
	// (SIGKILL). A process that still exits 0 is not reported killed.
	OOMKilled bool
	Err       error
}

// Image is one image in the node's store.
type Image struct {
	Name, Digest string
	Size         int64
	CreatedAt    time.Time
}

// ExecResult is how a command run in a container ended.
type ExecResult struct {
	ExitCode int
	// Output is the command's stdout and stderr interleaved, cut to the
	// first MaxExecOutput bytes.
	Output []byte
}

// MaxExecOutput is how much of an exec'd command's output ExecResult keeps:
// enough to explain a failed health probe, bounded so a chatty one cannot
// grow the agent's memory.
const MaxExecOutput = 4096

// LogStream says which output a log line came from.
type LogStream int

// The output streams of a container.
const (
	Stdout LogStream = iota
	Stderr
)

// LogLine is one line of a container's output, without its newline.
type LogLine struct {
	Stream LogStream
	At     time.Time
	Line   []byte
}

// LogOptions select the lines Logs returns.
type LogOptions struct {
	Follow bool  // keep returning new lines until the container exits or ctx ends
	Tail   int64 // only the last Tail lines; <0 for all
	// Since keeps the lines written at or after it; zero keeps all. It
	// applies before Tail.
	Since time.Time
	// Until keeps the lines written at or before it; zero keeps all. It
	// applies before Tail, and ends a followed read once passed.
	Until time.Time
}

// Errors the runtime returns, wrapped; test with errors.Is.
var (
	ErrNotFound      = errors.New("container not found")
	ErrImageNotFound = errors.New("image not found")
	ErrExists        = errors.New("container already exists")
)

// Runtime is everything the agent asks of what runs its containers. It
// is made of one small interface per concern, so that each part of the
// agent can depend on only the concern it uses.
type Runtime interface {
	Containers
	Images
	Logs
	Exec
	Stats
}

// Containers creates, runs and removes the agent's containers.
type Containers interface {
	// Create makes the container, its snapshot and its network attachment,
	// without starting it. ErrExists if the id exists, ErrImageNotFound if
	// the image is missing.
	Create(ctx context.Context, spec ContainerSpec) error
	Start(ctx context.Context, id string) (Status, error)
	// Wait sends one value when the process exits, also for a process that
	// exited before Wait.
	Wait(ctx context.Context, id string) (<-chan Exit, error)
	// Stop sends signal, then SIGKILL after grace; no error if already stopped.
	Stop(ctx context.Context, id string, signal string, grace time.Duration) error
	// Remove deletes the task, container, snapshot, network attachment and
	// log files; nil if not found.
	Remove(ctx context.Context, id string) error
	// Release frees what container id holds only while it runs: its
	// network attachment (namespace, links, published ports, DNS
	// server) and, once its process has ended, the runtime's process
	// that watched it. The container, its exit code and its logs stay
	// until Remove. For a container whose process has ended; idempotent,
	// and nil if the container is not there.
	Release(ctx context.Context, id string) error
	Inspect(ctx context.Context, id string) (Status, error)
	// List returns the containers owned by this runtime.
	List(ctx context.Context) ([]Status, error)
}

// Images keeps the node's image store.
type Images interface {
	ImageExists(ctx context.Context, ref string) (bool, error)
	ListImages(ctx context.Context) ([]Image, error)
	// ImportImage loads an OCI or docker-archive tar (like `docker load`)
	// and unpacks it for the snapshotter.
	ImportImage(ctx context.Context, r io.Reader) ([]Image, error)
	// Pull fetches image ref (a name, or name@digest) from the registry
	// opts names and unpacks it. With opts.Name set, the image is stored
	// under that name (a pinned pull keeps the tag it runs as).
	Pull(ctx context.Context, ref string, opts PullOptions) (Image, error)
	// Push sends image ref of the node's store to the registry opts names.
	// ErrImageNotFound if the image is missing.
	Push(ctx context.Context, ref string, opts PushOptions) error
	// RemoveImage deletes the image named ref; nil if it is not there.
	// Its content goes once no other image or container holds it.
	RemoveImage(ctx context.Context, ref string) error
	// ImageHealthcheck returns the HEALTHCHECK of image ref's config; nil
	// when the image has none. ErrImageNotFound if the image is missing.
	ImageHealthcheck(ctx context.Context, ref string) (*berthv1.HealthCheck, error)
}

// ContainerUsage measures what a container holds on disk. It is not part
// of Runtime: a runtime that cannot tell (the fake) leaves it out, and
// disk usage then counts its containers without their size.
type ContainerUsage interface {
	// WritableBytes is the size of container id's writable layer: what
	// it wrote over its image.
	WritableBytes(ctx context.Context, id string) (int64, error)
}

// Logs reads containers' output.
type Logs interface {
	// Logs calls fn for each selected line, in order, until fn fails.
	Logs(ctx context.Context, id string, opts LogOptions, fn func(LogLine) error) error
}

// Exec runs commands inside running containers.
type Exec interface {
	// Exec runs cmd inside running container id (its namespaces, env,
	// user, working dir), waiting at most until ctx ends; a command still
	// running then is killed and Exec returns ctx.Err(), wrapped.
	Exec(ctx context.Context, id string, cmd []string) (ExecResult, error)
	// ExecSession runs opts.Cmd in running container id with streams, on
	// a terminal when opts.TTY, and returns its exit code once it exited
	// and its output was copied. When ctx ends first the process is killed
	// and the error wraps ctx.Err().
	ExecSession(ctx context.Context, id string, opts SessionOptions) (int, error)
}

// Stats reads containers' resource use.
type Stats interface {
	// Stats returns the resource use of the running containers among ids,
	// or of every running container when ids is empty; the others are
	// left out.
	Stats(ctx context.Context, ids []string) ([]ContainerStats, error)
}

// Network connects containers. The agent's node network implements it.
type Network interface {
	// Attach creates the container's network namespace, connects it to
	// spec.Networks, publishes spec.Ports and writes its resolver files.
	// Idempotent per spec.ID.
	Attach(ctx context.Context, spec ContainerSpec) (Attachment, error)
	Detach(ctx context.Context, id string) error // idempotent
}

// NetworkTraffic reads what a container's network interfaces received
// and sent so far (loopback aside), in bytes. A Network may implement it;
// Stats then reports it.
type NetworkTraffic interface {
	Traffic(id string) (rx, tx uint64, err error)
}

// Attachment is where a container was connected.
type Attachment struct {
	NetNSPath string
	// IP is the container's address on its first network.
	IP string
	// Files are the generated /etc files to mount into the container,
	// by their path inside it (/etc/resolv.conf, /etc/hosts,
	// /etc/hostname).
	Files map[string]string
}

// ImageFiles gives read access to an image's file tree, for the agent's
// SBOMs. A runtime without files (the fake) does not implement it.
type ImageFiles interface {
	// MountImage mounts image ref's root file system read-only in a new
	// temporary directory; the image must be in the store
	// (ErrImageNotFound otherwise). Release unmounts it and removes what
	// it made; it must be called.
	MountImage(ctx context.Context, ref string) (ImageMount, error)
}

// Files copies files out of and into running containers (berth cp), as
// tar archives. A runtime without files (the fake) does not implement it.
type Files interface {
	// CopyFrom writes the file or directory at path in running container
	// id to w as a tar archive. ErrNotFound (wrapped) when the container
	// does not run; ErrPathNotFound when the path is not in it.
	CopyFrom(ctx context.Context, id, path string, w io.Writer) error
	// CopyTo unpacks the tar archive r at path in running container id
	// (into path when it is a directory, else as path), and returns how
	// many entries it wrote. ErrReadOnly when path is on a read-only root
	// file system and in no writable volume.
	CopyTo(ctx context.Context, id, path string, r io.Reader) (int, error)
}

// Errors of Files, wrapped; test with errors.Is.
var (
	ErrPathNotFound = errors.New("no such file or directory in the container")
	ErrReadOnly     = errors.New("read-only file system")
	ErrTooLarge     = errors.New("copy is over its size limit")
)

// ImageMount is an image's file tree mounted by MountImage.
type ImageMount struct {
	// Dir is where the tree is mounted; Digest the image's manifest digest.
	Dir, Digest string
	Release     func() error
}
