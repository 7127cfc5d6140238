package containerd

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/berthproject/berth/agent/runtime"
	"github.com/berthproject/berth/api/validation"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cap"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultPidsLimit caps a container's processes when its options ask for
// no other limit: enough for any service, few enough that a fork bomb
// stays in its container.
const DefaultPidsLimit = 4096

// defaultCaps are Docker's default capabilities without NET_RAW, which
// only lets a process forge packets (ping works without it through ICMP
// sockets).
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// securityOpts turns a container's options into OCI spec options. They go
// after the image's config and the user: group_add adds to the user's
// groups, and the seccomp profile depends on the capabilities.
func securityOpts(o runtime.ContainerOptions) ([]oci.SpecOpts, error) {
	sec, err := parseSecurityOpt(o.SecurityOpt)
	if err != nil {
		return nil, err
	}
	var opts []oci.SpecOpts
	if o.Privileged {
		opts = append(opts, oci.WithPrivileged, oci.WithHostDevices, oci.WithAllDevicesAllowed, oci.WithNewPrivileges)
	} else {
		caps, err := capabilities(o.CapAdd, o.CapDrop)
		if err != nil {
			return nil, err
		}
		opts = append(opts, oci.WithCapabilities(caps))
		if sec.seccompUnconfined {
			opts = append(opts, oci.WithSeccompUnconfined)
		} else {
			opts = append(opts, seccomp.WithDefaultProfile())
		}
		if sec.newPrivileges {
			opts = append(opts, oci.WithNewPrivileges)
		} else {
			opts = append(opts, oci.WithNoNewPrivileges)
		}
	}
	for _, d := range o.Devices {
		host, inside, perms, err := parseDevice(d)
		if err != nil {
			return nil, err
		}
		opts = append(opts, oci.WithDevices(host, inside, perms))
	}
	switch {
	case o.PidsLimit == 0:
		opts = append(opts, oci.WithPidsLimit(DefaultPidsLimit))
	case o.PidsLimit > 0:
		opts = append(opts, oci.WithPidsLimit(o.PidsLimit))
	}
	if len(o.Sysctls) > 0 {
		opts = append(opts, withSysctls(o.Sysctls))
	}
	for _, u := range o.Ulimits {
		rl, err := rlimit(u)
		if err != nil {
			return nil, err
		}
		opts = append(opts, oci.WithRlimit(rl))
	}
	if o.ReadOnly {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	if len(o.GroupAdd) > 0 {
		opts = append(opts, oci.WithAppendAdditionalGroups(o.GroupAdd...))
	}
	switch o.PID {
	case "":
	case validation.HostNamespace:
		opts = append(opts, oci.WithHostNamespace(specs.PIDNamespace))
	default:
		return nil, fmt.Errorf("pid %q: use \"\" or \"host\"", o.PID)
	}
	switch o.IPC {
	case "":
		if o.ShmSize > 0 {
			opts = append(opts, oci.WithDevShmSize(o.ShmSize/1024))
		}
	case validation.HostNamespace:
		opts = append(opts, oci.WithHostNamespace(specs.IPCNamespace), withHostShm)
	default:
		return nil, fmt.Errorf("ipc %q: use \"\" or \"host\"", o.IPC)
	}
	return opts, nil
}

// securityOptions are the security_opt entries Berth understands.
type securityOptions struct {
	newPrivileges     bool
	seccompUnconfined bool
}

// parseSecurityOpt reads Docker's security_opt: "no-new-privileges" with
// ":" or "=" and a boolean, and "seccomp=unconfined" (or ":").
func parseSecurityOpt(list []string) (securityOptions, error) {
	var out securityOptions
	for _, opt := range list {
		key, value, ok := strings.Cut(opt, "=")
		if !ok {
			key, value, ok = strings.Cut(opt, ":")
		}
		switch {
		case key == "no-new-privileges" && (!ok || value == "true"):
			out.newPrivileges = false
		case key == "no-new-privileges" && value == "false":
			out.newPrivileges = true
		case key == "seccomp" && value == "unconfined":
			out.seccompUnconfined = true
		case key == "seccomp" && value == "default":
			out.seccompUnconfined = false
		default:
			return securityOptions{}, fmt.Errorf("security_opt %q is not supported: use no-new-privileges[:true|false] or seccomp=unconfined|default", opt)
		}
	}
	return out, nil
}

// capabilities returns Docker's default set without NET_RAW, less drop,
// plus add. "ALL" in drop starts from nothing; in add, from every
// capability this process has.
func capabilities(add, drop []string) ([]string, error) {
	norm := func(list []string) ([]string, error) {
		out := make([]string, 0, len(list))
		known := cap.Known()
		for _, c := range list {
			c = validation.CanonicalCapability(c)
			if c == validation.AllCapabilities {
				out = append(out, c)
				continue
			}
			c = "CAP_" + c
			if !slices.Contains(known, c) {
				return nil, fmt.Errorf("capability %s is not known to this kernel", c)
			}
			out = append(out, c)
		}
		return out, nil
	}
	add, err := norm(add)
	if err != nil {
		return nil, fmt.Errorf("cap_add: %w", err)
	}
	drop, err = norm(drop)
	if err != nil {
		return nil, fmt.Errorf("cap_drop: %w", err)
	}
	caps := slices.Clone(defaultCaps)
	if slices.Contains(drop, validation.AllCapabilities) {
		caps = nil
	}
	caps = slices.DeleteFunc(caps, func(c string) bool { return slices.Contains(drop, c) })
	if slices.Contains(add, validation.AllCapabilities) {
		current, err := cap.Current()
		if err != nil {
			return nil, fmt.Errorf("cap_add ALL: %w", err)
		}
		add = current
	}
	for _, c := range add {
		if !slices.Contains(caps, c) {
			caps = append(caps, c)
		}
	}
	return caps, nil
}

// parseDevice reads a device as Compose writes it: "HOST[:CONTAINER[:PERMS]]",
// permissions from r, w and m (default rwm).
func parseDevice(d string) (host, inside, perms string, err error) {
	parts := strings.Split(d, ":")
	host, perms = parts[0], "rwm"
	switch len(parts) {
	case 1:
	case 2:
		if isDevicePerms(parts[1]) {
			perms = parts[1]
		} else {
			inside = parts[1]
		}
	case 3:
		inside, perms = parts[1], parts[2]
	default:
		return "", "", "", fmt.Errorf("device %q: use HOST[:CONTAINER[:PERMISSIONS]]", d)
	}
	if !strings.HasPrefix(host, "/") || (inside != "" && !strings.HasPrefix(inside, "/")) || !isDevicePerms(perms) {
		return "", "", "", fmt.Errorf("device %q: use absolute paths and permissions made of r, w and m", d)
	}
	return host, inside, perms, nil
}

func isDevicePerms(s string) bool {
	return s != "" && strings.Trim(s, "rwm") == ""
}

// rlimit turns a ulimit ("nofile") into its OCI form (RLIMIT_NOFILE).
func rlimit(u runtime.Ulimit) (*specs.POSIXRlimit, error) {
	name := "RLIMIT_" + strings.ToUpper(u.Name)
	if !slices.Contains(rlimitNames, name) {
		return nil, fmt.Errorf("ulimit %q is not known: use one of %s", u.Name, strings.ToLower(strings.ReplaceAll(strings.Join(rlimitNames, ", "), "RLIMIT_", "")))
	}
	// -1 is no limit, which is the largest one.
	limit := func(n int64) uint64 {
		if n == -1 {
			return math.MaxUint64
		}
		return uint64(n)
	}
	soft, hard := u.Soft, u.Hard
	if hard == 0 && soft != 0 {
		hard = soft
	}
	if soft < -1 || hard < -1 || limit(soft) > limit(hard) {
		return nil, fmt.Errorf("ulimit %s: soft %d and hard %d: want soft at most hard, -1 for no limit", u.Name, soft, hard)
	}
	return &specs.POSIXRlimit{Type: name, Soft: limit(soft), Hard: limit(hard)}, nil
}

var rlimitNames = []string{
	"RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE",
	"RLIMIT_LOCKS", "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE",
	"RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_RSS", "RLIMIT_RTPRIO",
	"RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK",
}

func withSysctls(sysctls map[string]string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux.Sysctl == nil {
			s.Linux.Sysctl = map[string]string{}
		}
		maps.Copy(s.Linux.Sysctl, sysctls)
		return nil
	}
}

// withHostShm shares the host's /dev/shm, as Docker does for ipc: host.
func withHostShm(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	for i, m := range s.Mounts {
		if m.Destination == "/dev/shm" {
			s.Mounts[i] = specs.Mount{Destination: "/dev/shm", Type: "bind", Source: "/dev/shm", Options: []string{"rbind", "nosuid", "noexec", "nodev"}}
		}
	}
	return nil
}

// isHostNetwork reads network_mode: "" is the container's own namespace
// on its networks, "host" the node's.
func isHostNetwork(mode string) (bool, error) {
	switch mode {
	case "":
		return false, nil
	case validation.HostNamespace:
		return true, nil
	default:
		return false, fmt.Errorf("network_mode %q: use \"\" or \"host\" (services join networks with networks:)", mode)
	}
}
