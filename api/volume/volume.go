// Package volume holds the rules of named volumes that the control plane
// and the agents share.
package volume

import (
	"fmt"
	"regexp"
	"strconv"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// Name is the name of the volume that a task of a service uses for a
// mount of source: one per slot ("<source>.<slot>") for a replicated
// service, one per node ("<source>.<node name>") for a global one (slot
// 0).
func Name(source string, slot uint64, nodeName string) string {
	if slot == 0 {
		return source + "." + nodeName
	}
	return source + "." + strconv.FormatUint(slot, 10)
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// ValidateName says why name cannot name a volume, or nil when it can.
// Names become directory names on nodes, so they are kept to a safe set.
func ValidateName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("volume name %q is not valid: use letters, digits, '_', '.' and '-', starting with a letter or digit, at most 128 characters", name)
	}
	return nil
}

// IsNamed reports whether m mounts a named volume: a volume with a source
// (one without is scratch space that lives as long as its task).
func IsNamed(m *berthv1.Mount) bool {
	t := m.GetType()
	return (t == berthv1.MountType_MOUNT_TYPE_VOLUME || t == berthv1.MountType_MOUNT_TYPE_UNSPECIFIED) && m.GetSource() != ""
}

// HasNamed reports whether a task of spec keeps data in a named volume:
// its replicated tasks then stay on their volumes' nodes.
func HasNamed(spec *berthv1.ServiceSpec) bool {
	for _, m := range spec.GetMounts() {
		if IsNamed(m) {
			return true
		}
	}
	return false
}
