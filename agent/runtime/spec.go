package runtime

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/agent/network/dns"
	"github.com/berthproject/berth/api/imageref"
)

// ParseSignal reads a signal as users write it: "SIGTERM", "TERM", "term"
// or a number like "15".
func ParseSignal(s string) (syscall.Signal, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("signal %q: number out of range 1-64", s)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	if sig == 0 {
		return 0, fmt.Errorf("signal %q: unknown signal name; use a name like SIGTERM or a number", s)
	}
	return sig, nil
}

// Hostname is the container's host name: spec.Hostname, else its id cut
// to the 63 bytes a host name may have. The rule is the DNS package's, so
// the name the container has and the one its /etc/hosts gives agree.
func Hostname(spec ContainerSpec) string {
	return dns.TaskHostname(spec.Hostname, spec.ID)
}

// ImportedImageName returns the name an imported image gets from its
// ref.name annotation: ref normalized when it is a reference with a
// repository, else "". A bare tag like "latest" (what many OCI layouts
// hold there) names nothing.
func ImportedImageName(ref string) string {
	if !strings.ContainsAny(ref, ":/@") {
		return ""
	}
	name, err := imageref.Normalize(ref)
	if err != nil {
		return ""
	}
	return name
}
