package validation

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// capabilities are the Linux capabilities (capabilities(7)), without
// their CAP_ prefix.
var capabilities = map[string]bool{
	"CHOWN": true, "DAC_OVERRIDE": true, "DAC_READ_SEARCH": true, "FOWNER": true, "FSETID": true,
	"KILL": true, "SETGID": true, "SETUID": true, "SETPCAP": true, "LINUX_IMMUTABLE": true,
	"NET_BIND_SERVICE": true, "NET_BROADCAST": true, "NET_ADMIN": true, "NET_RAW": true,
	"IPC_LOCK": true, "IPC_OWNER": true, "SYS_MODULE": true, "SYS_RAWIO": true, "SYS_CHROOT": true,
	"SYS_PTRACE": true, "SYS_PACCT": true, "SYS_ADMIN": true, "SYS_BOOT": true, "SYS_NICE": true,
	"SYS_RESOURCE": true, "SYS_TIME": true, "SYS_TTY_CONFIG": true, "MKNOD": true, "LEASE": true,
	"AUDIT_WRITE": true, "AUDIT_CONTROL": true, "SETFCAP": true, "MAC_OVERRIDE": true, "MAC_ADMIN": true,
	"SYSLOG": true, "WAKE_ALARM": true, "BLOCK_SUSPEND": true, "AUDIT_READ": true, "PERFMON": true,
	"BPF": true, "CHECKPOINT_RESTORE": true,
}

// AllCapabilities is the cap_add and cap_drop entry that stands for every
// capability.
const AllCapabilities = "ALL"

// ulimitNames are the resource limits a container may set (setrlimit(2),
// without RLIMIT_, lower case).
var ulimitNames = map[string]bool{
	"as": true, "core": true, "cpu": true, "data": true, "fsize": true, "locks": true,
	"memlock": true, "msgqueue": true, "nice": true, "nofile": true, "nproc": true, "rss": true,
	"rtprio": true, "rttime": true, "sigpending": true, "stack": true,
}

// The security options a service may give, as Normalize writes them.
const (
	NoNewPrivileges      = "no-new-privileges:true"
	NewPrivilegesAllowed = "no-new-privileges:false"
	SeccompUnconfined    = "seccomp=unconfined"
	SeccompDefault       = "seccomp=default"
)

// HostNamespace is the value of pid, ipc and network_mode that shares the
// host's namespace.
const HostNamespace = "host"

// CanonicalCapability writes a capability name as Normalize keeps it:
// upper case, without the CAP_ prefix.
func CanonicalCapability(name string) string {
	return strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(name)), "CAP_")
}

// canonicalSecurityOpt writes a security option as Normalize keeps it,
// or returns it as it is when it is not one Berth knows.
func canonicalSecurityOpt(opt string) string {
	trimmed := strings.TrimSpace(opt)
	key, value, hasValue := strings.Cut(trimmed, ":")
	if k, v, ok := strings.Cut(trimmed, "="); ok && (!hasValue || len(k) < len(key)) {
		key, value, hasValue = k, v, true
	}
	key, value = strings.TrimSpace(key), strings.TrimSpace(value)
	switch {
	case key == "no-new-privileges" && (!hasValue || value == "true"):
		return NoNewPrivileges
	case key == "no-new-privileges" && value == "false":
		return NewPrivilegesAllowed
	case key == "seccomp" && value == "unconfined":
		return SeccompUnconfined
	case key == "seccomp" && value == "default":
		return SeccompDefault
	}
	return opt
}

// NamespacedSysctl reports whether a kernel parameter belongs to the
// container's own namespaces (its network, IPC and message queues), so
// that setting it changes nothing outside the container.
func NamespacedSysctl(name string) bool {
	switch {
	case strings.HasPrefix(name, "net."), strings.HasPrefix(name, "fs.mqueue."),
		strings.HasPrefix(name, "kernel.shm"), strings.HasPrefix(name, "kernel.msg"),
		name == "kernel.sem":
		return len(name) > strings.LastIndex(name, ".")+1
	}
	return false
}

// normalizeContainer writes a spec's container options the one way they
// compare: capability names canonical, security options canonical,
// ulimits by name, and no options at all as none.
func normalizeContainer(spec *berthv1.ServiceSpec) {
	c := spec.Container
	if c == nil {
		return
	}
	for i, name := range c.CapAdd {
		c.CapAdd[i] = CanonicalCapability(name)
	}
	for i, name := range c.CapDrop {
		c.CapDrop[i] = CanonicalCapability(name)
	}
	for i, opt := range c.SecurityOpt {
		c.SecurityOpt[i] = canonicalSecurityOpt(opt)
	}
	slices.SortStableFunc(c.Ulimits, func(a, b *berthv1.Ulimit) int {
		return strings.Compare(a.GetName(), b.GetName())
	})
	if proto.Size(c) == 0 {
		spec.Container = nil
	}
}

// container checks a spec's container options. Whether the cluster
// allows the privileged ones is the server's to check.
func (v *specValidator) container(c *berthv1.ContainerOptions) {
	if c == nil {
		return
	}
	for _, list := range []struct {
		field string
		names []string
	}{{"cap_add", c.GetCapAdd()}, {"cap_drop", c.GetCapDrop()}} {
		for i, name := range list.names {
			if cname := CanonicalCapability(name); cname != AllCapabilities && !capabilities[cname] {
				v.add(fmt.Sprintf("%s[%d]", list.field, i), fmt.Sprintf("unknown capability %q; use a name of capabilities(7) like NET_ADMIN, or ALL", name))
			}
		}
	}
	hostNetwork := c.GetNetworkMode() == HostNamespace
	for _, name := range slices.Sorted(maps.Keys(c.GetSysctls())) {
		field := "sysctls." + name
		switch {
		case !NamespacedSysctl(name):
			v.add(field, fmt.Sprintf("%q is not a kernel parameter of the container's own namespaces; set only net.*, kernel.shm*, kernel.msg*, kernel.sem or fs.mqueue.*", name))
		case hostNetwork && strings.HasPrefix(name, "net."):
			v.add(field, "with network_mode: host it would change the host's network; remove it, or the network_mode")
		case strings.TrimSpace(c.GetSysctls()[name]) == "":
			v.add(field, "the value is empty")
		}
	}
	v.ulimits(c.GetUlimits())
	for i, g := range c.GetGroupAdd() {
		if strings.TrimSpace(g) == "" || strings.ContainsAny(g, ": \t") {
			v.add(fmt.Sprintf("group_add[%d]", i), fmt.Sprintf("%q is not a group; give a group name or id, like audio or 1001", g))
		}
	}
	if n := c.GetPidsLimit(); n < -1 {
		v.add("pids_limit", fmt.Sprintf("%d is not a limit; give a number of processes, or -1 for no limit", n))
	}
	if n := c.GetShmSize(); n < 0 {
		v.add("shm_size", fmt.Sprintf("%d bytes is negative; give a size like 128m, or leave it unset", n))
	}
	for i, d := range c.GetDevices() {
		if err := checkDevice(d); err != nil {
			v.add(fmt.Sprintf("devices[%d]", i), err.Error())
		}
	}
	for _, ns := range []struct{ field, value string }{{"pid", c.GetPid()}, {"ipc", c.GetIpc()}, {"network_mode", c.GetNetworkMode()}} {
		if ns.value != "" && ns.value != HostNamespace {
			v.add(ns.field, fmt.Sprintf("%q is not supported; leave it unset for the container's own namespace, or use host", ns.value))
		}
	}
	for i, opt := range c.GetSecurityOpt() {
		switch canonicalSecurityOpt(opt) {
		case NoNewPrivileges, NewPrivilegesAllowed, SeccompUnconfined, SeccompDefault:
		default:
			v.add(fmt.Sprintf("security_opt[%d]", i), fmt.Sprintf("%q is not supported; Berth takes no-new-privileges[:true|false] and seccomp=unconfined|default", opt))
		}
	}
}

func (v *specValidator) ulimits(ulimits []*berthv1.Ulimit) {
	seen := map[string]bool{}
	for i, u := range ulimits {
		if u == nil {
			v.add(fmt.Sprintf("ulimits[%d]", i), "ulimit is missing")
			continue
		}
		field := "ulimits." + u.GetName()
		switch {
		case !ulimitNames[u.GetName()]:
			v.add(field, fmt.Sprintf("unknown limit %q; use one of %s", u.GetName(), strings.Join(slices.Sorted(maps.Keys(ulimitNames)), ", ")))
			continue
		case seen[u.GetName()]:
			v.add(field, "the limit is set twice; keep one")
			continue
		}
		seen[u.GetName()] = true
		soft, hard := u.GetSoft(), u.GetHard()
		switch {
		case soft < -1 || hard < -1:
			v.add(field, fmt.Sprintf("soft %d, hard %d: give limits of 0 or more, or -1 for no limit", soft, hard))
		case hard != -1 && (soft == -1 || soft > hard):
			v.add(field, fmt.Sprintf("the soft limit %d is above the hard limit %d; lower it or raise the hard one", soft, hard))
		}
	}
}

// checkDevice checks a device entry, HOST_PATH[:CONTAINER_PATH[:PERMISSIONS]]
// with permissions of r, w and m.
func checkDevice(d string) error {
	parts := strings.Split(d, ":")
	if len(parts) > 3 {
		return fmt.Errorf("%q is not a device; write HOST_PATH[:CONTAINER_PATH[:PERMISSIONS]], like /dev/fuse", d)
	}
	for i, p := range parts {
		if i == 2 {
			if p == "" || strings.Trim(p, "rwm") != "" {
				return fmt.Errorf("%q: permissions %q are not some of r, w and m", d, p)
			}
			continue
		}
		if !path.IsAbs(p) || path.Clean(p) != p {
			return fmt.Errorf("%q: %q is not an absolute path of a device, like /dev/fuse", d, p)
		}
	}
	return nil
}
