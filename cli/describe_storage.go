package cli

import (
	"fmt"
	"io"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// printServiceStorage is the Mounts section of a service's description,
// for a service that has any: its volumes, bind and tmpfs mounts, then its
// secrets and configs by name, version and digest (their data is never
// shown).
func printServiceStorage(w io.Writer, spec *berthv1.ServiceSpec) {
	rows := len(spec.GetMounts()) + len(spec.GetSecrets()) + len(spec.GetConfigs())
	if rows == 0 {
		return
	}
	section(w, "Mounts", rows, func(tw io.Writer) {
		fmt.Fprintln(tw, "  TARGET\tKIND\tSOURCE\tOPTIONS")
		for _, m := range spec.GetMounts() {
			kind, source := mountKind(m, spec.GetMode())
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", m.GetTarget(), kind, source, mountOptions(m))
		}
		for _, f := range spec.GetSecrets() {
			fmt.Fprintf(tw, "  %s\tsecret\t%s\t%s\n", f.GetTarget(), f.GetName(), fileOptions(f))
		}
		for _, f := range spec.GetConfigs() {
			fmt.Fprintf(tw, "  %s\tconfig\t%s\t%s\n", f.GetTarget(), f.GetName(), fileOptions(f))
		}
	})
}

// mountKind names what a mount brings and from where: a named volume is
// one per slot, or one per node for a global service.
func mountKind(m *berthv1.Mount, mode berthv1.ServiceMode) (kind, source string) {
	switch m.GetType() {
	case berthv1.MountType_MOUNT_TYPE_BIND:
		return "bind", m.GetSource()
	case berthv1.MountType_MOUNT_TYPE_TMPFS:
		return "tmpfs", "-"
	}
	if m.GetSource() == "" {
		return "scratch volume", "-"
	}
	if mode == berthv1.ServiceMode_SERVICE_MODE_GLOBAL {
		return "volume", m.GetSource() + ".NODE"
	}
	return "volume", m.GetSource() + ".SLOT"
}

func mountOptions(m *berthv1.Mount) string {
	var opts []string
	if m.GetReadOnly() {
		opts = append(opts, "read-only")
	}
	if m.GetNoCopy() {
		opts = append(opts, "nocopy")
	}
	if m.GetSubpath() != "" {
		opts = append(opts, "subpath "+m.GetSubpath())
	}
	if m.GetTmpfsSize() > 0 {
		opts = append(opts, "size "+bytesColumn(m.GetTmpfsSize()))
	}
	if m.GetTmpfsMode() != 0 {
		opts = append(opts, fmt.Sprintf("mode %04o", m.GetTmpfsMode()))
	}
	if m.GetExternal() {
		opts = append(opts, "external")
	}
	return strings.Join(opts, ", ")
}

func fileOptions(f *berthv1.FileReference) string {
	return fmt.Sprintf("version %d, %d:%d, mode %04o, %s", f.GetVersion(), f.GetUid(), f.GetGid(), f.GetMode(), f.GetDigest())
}
