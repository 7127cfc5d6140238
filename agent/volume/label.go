package volume

import (
	"fmt"
	"strings"
)

// Label is the container label where a runtime lists the named volumes a
// container uses (FormatLabel), so that a restarted agent marks them used
// again (ParseLabel, Acquire) before anyone may remove them.
const Label = "berth.runtime.volumes"

// FormatLabel writes refs as Label's value: "namespace/name" joined by
// commas, which no valid name holds.
func FormatLabel(refs []Ref) string {
	parts := make([]string, 0, len(refs))
	for _, r := range refs {
		parts = append(parts, r.String())
	}
	return strings.Join(parts, ",")
}

// ParseLabel reads a value FormatLabel wrote; "" holds no volume.
func ParseLabel(v string) ([]Ref, error) {
	if v == "" {
		return nil, nil
	}
	var refs []Ref
	for _, part := range strings.Split(v, ",") {
		ns, name, ok := strings.Cut(part, "/")
		ref := Ref{Namespace: ns, Name: name}
		if !ok {
			return nil, fmt.Errorf("label %s: %q is not namespace/name", Label, part)
		}
		if err := ref.Validate(); err != nil {
			return nil, fmt.Errorf("label %s: %w", Label, err)
		}
		refs = append(refs, ref)
	}
	return refs, nil
}
