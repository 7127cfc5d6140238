package scheduler

import (
	"strings"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// platform is an operating system and CPU architecture in normalized
// form ("amd64", never "x86_64"), so that what a user writes in a Compose
// file compares equal to what an agent reports. An empty field is unknown
// on a node, and "any" in a task's list.
type platform struct {
	os, arch, variant string
}

// newPlatform normalizes an OS and an architecture, which may carry a
// variant ("arm/v7"). Empty fields stay empty: normalizing them would fill
// in the platform of the machine running the scheduler.
func newPlatform(os, arch string) platform {
	var p platform
	if os = strings.TrimSpace(os); os != "" {
		// The architecture is a placeholder: only the OS is read.
		p.os = platforms.Normalize(ocispec.Platform{OS: os, Architecture: "amd64"}).OS
	}
	arch, variant, _ := strings.Cut(strings.TrimSpace(arch), "/")
	if arch != "" {
		n := platforms.Normalize(ocispec.Platform{OS: "linux", Architecture: arch, Variant: variant})
		p.arch = n.Architecture
		// A variant the user did not write (arm means arm/v7 to the
		// normalizer) would rule out nodes that report none.
		if variant != "" {
			p.variant = n.Variant
		}
	}
	return p
}

// matches reports whether a node of platform have runs what p names. Empty
// fields of p match anything; a variant is compared only when both sides
// name one, since agents report none.
func (p platform) matches(have platform) bool {
	if p.os != "" && p.os != have.os {
		return false
	}
	if p.arch != "" && p.arch != have.arch {
		return false
	}
	return p.variant == "" || have.variant == "" || p.variant == have.variant
}

// String reads like "linux/arm64" or "linux/arm/v7", with "*" for a field
// that matches anything.
func (p platform) String() string {
	os, arch := p.os, p.arch
	if os == "" {
		os = "*"
	}
	if arch == "" {
		arch = "*"
	}
	s := os + "/" + arch
	if p.variant != "" {
		s += "/" + p.variant
	}
	return s
}
