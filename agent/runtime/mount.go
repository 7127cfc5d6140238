package runtime

// MountType says what a Mount brings into a container.
type MountType int

// The kinds of mounts.
const (
	// MountVolume is a named volume of the node (Source is its name in
	// ContainerSpec.Namespace), or with no Source a scratch volume that
	// lives as long as the container.
	MountVolume MountType = iota
	// MountBind is a path of the node (Source).
	MountBind
	// MountTmpfs is memory, empty at each start.
	MountTmpfs
)

// Mount is one of a container's mounts.
type Mount struct {
	Type MountType
	// Source is the volume's name for MountVolume ("" for a scratch
	// volume), the node's path for MountBind; unused for MountTmpfs.
	Source string
	// Target is the absolute path in the container.
	Target   string
	ReadOnly bool
	// NoCopy keeps a new volume empty instead of filling it with the
	// image's files at Target.
	NoCopy bool
	// Subpath mounts this relative path of the volume instead of its root.
	Subpath string
	// TmpfsSize is in bytes (0: the kernel's default); TmpfsMode holds the
	// tmpfs root's permission bits (0: 01777).
	TmpfsSize int64
	TmpfsMode uint32
}

// Ulimit is one resource limit of a container's processes.
type Ulimit struct {
	// Name is the limit without RLIMIT_, in lower case: "nofile".
	Name       string
	Soft, Hard int64
}

// ContainerOptions are a container's process and kernel options. The
// zero value is Docker's hardening: the default seccomp profile,
// no_new_privileges, Docker's default capabilities without NET_RAW and
// the default pids limit.
type ContainerOptions struct {
	// Init runs a small init as PID 1 that reaps zombies and forwards
	// signals.
	Init bool
	// CapAdd and CapDrop are capability names, with or without CAP_;
	// "ALL" is every capability.
	CapAdd, CapDrop []string
	Sysctls         map[string]string
	Ulimits         []Ulimit
	// ReadOnly mounts the root file system read-only.
	ReadOnly bool
	// GroupAdd are more groups (names in the image's /etc/group, or ids).
	GroupAdd []string
	// PidsLimit caps the container's processes: 0 is the default, -1 none.
	PidsLimit int64
	// ShmSize is /dev/shm's size in bytes; 0 is 64 MiB.
	ShmSize    int64
	Privileged bool
	// Devices are host devices: "HOST[:CONTAINER[:PERMISSIONS]]".
	Devices []string
	// PID, IPC and NetworkMode are "" (the container's own) or "host".
	PID, IPC, NetworkMode string
	// SecurityOpt are Docker's "no-new-privileges:false" and
	// "seccomp=unconfined".
	SecurityOpt []string
}
