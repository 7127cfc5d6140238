// Package registry keeps the cluster's registry credentials: sealed at
// rest with the cluster's key-encryption key, cached in memory from an
// etcd watch, and handed to agents as an ImageSource for the images of
// the registry they belong to. It also speaks to registries for the
// control plane: checking a login and resolving a tag to its digest.
package registry

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/berthproject/berth/api/imageref"
)

// DockerHub is how Berth names Docker Hub, whatever alias a user typed.
const DockerHub = "docker.io"

// dockerHubAliases are the other names users and tools give Docker Hub.
var dockerHubAliases = map[string]bool{
	"index.docker.io":         true,
	"registry-1.docker.io":    true,
	"registry.hub.docker.com": true,
}

// ErrInvalidRegistry marks a registry name that is not host[:port].
var ErrInvalidRegistry = errors.New("invalid registry")

// Normalize returns the canonical name of a registry, as credentials are
// stored under: host[:port] in lower case, "docker.io" for Docker Hub or
// an empty name. A scheme and a path ("https://index.docker.io/v1/") are
// dropped, as users paste them from other tools' configs.
func Normalize(registry string) (string, error) {
	s := strings.TrimSpace(registry)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	s = strings.ToLower(s)
	if s == "" || s == DockerHub || dockerHubAliases[s] {
		return DockerHub, nil
	}
	host, port := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("%w %q: port %q is not a number from 1 to 65535", ErrInvalidRegistry, registry, p)
		}
	} else if strings.Contains(s, ":") && !strings.HasPrefix(s, "[") {
		return "", fmt.Errorf("%w %q: write it as host or host:port", ErrInvalidRegistry, registry)
	}
	if !validHost(host) {
		return "", fmt.Errorf("%w %q: %q is not a host name or IP address (write host or host:port, e.g. registry.example.com:5000)", ErrInvalidRegistry, registry, host)
	}
	if port != "" {
		return net.JoinHostPort(host, port), nil
	}
	return host, nil
}

// validHost accepts DNS names (letters, digits, '-', '.', '_') and IP
// addresses.
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if net.ParseIP(strings.Trim(h, "[]")) != nil {
		return true
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// HostOf returns the registry an image reference belongs to, normalized
// ("busybox" is on docker.io, "127.0.0.1:5000/app:1" on 127.0.0.1:5000).
func HostOf(image string) (string, error) {
	ref, err := imageref.Parse(image)
	if err != nil {
		return "", err
	}
	return Normalize(ref.Host())
}
