// Package imageref is the one place Berth reads image references. Every
// component that compares images (the scheduler's "this node holds the
// image", the dispatcher's peers, the agent's image store, the registry
// credentials, the pinning of tags at apply) names them in the same full
// form, so "busybox", "busybox:latest" and
// "docker.io/library/busybox:latest" are one image everywhere.
//
// The grammar and the Docker Hub defaults are distribution/reference's;
// this package only fixes which of its forms Berth uses.
package imageref

import (
	"fmt"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// DefaultTag is the tag of a reference that names none.
const DefaultTag = "latest"

// Ref is a parsed, normalised image reference. The zero Ref is empty.
type Ref struct {
	named reference.Named
}

// Parse reads an image reference as users write it and normalises it:
// Docker Hub's host and "library/" are filled in, and the tag "latest"
// when it names neither a tag nor a digest.
func Parse(s string) (Ref, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return Ref{}, fmt.Errorf("image reference %q: %w; write it as [registry/]name[:tag][@digest]", s, err)
	}
	return Ref{named: reference.TagNameOnly(named)}, nil
}

// Normalize returns the full form of s: "busybox" is
// "docker.io/library/busybox:latest". Two spellings of one image are
// equal in this form.
func Normalize(s string) (string, error) {
	r, err := Parse(s)
	if err != nil {
		return "", err
	}
	return r.String(), nil
}

// NormalizeOr returns the full form of s, or s itself when it does not
// parse: for comparisons that must not fail on a name a node reported.
func NormalizeOr(s string) string {
	if n, err := Normalize(s); err == nil {
		return n
	}
	return s
}

// IsZero reports whether r is the empty Ref.
func (r Ref) IsZero() bool { return r.named == nil }

// String is r's full form: host/path[:tag][@digest].
func (r Ref) String() string {
	if r.named == nil {
		return ""
	}
	return r.named.String()
}

// Host is the registry r lives at, as written ("docker.io" for Docker
// Hub; "127.0.0.1:5000").
func (r Ref) Host() string {
	if r.named == nil {
		return ""
	}
	return reference.Domain(r.named)
}

// Path is the repository path within its registry ("library/busybox").
func (r Ref) Path() string {
	if r.named == nil {
		return ""
	}
	return reference.Path(r.named)
}

// Repository is host and path, without tag or digest
// ("docker.io/library/busybox").
func (r Ref) Repository() string {
	if r.named == nil {
		return ""
	}
	return r.named.Name()
}

// Tag is r's tag, "" when it names only a digest.
func (r Ref) Tag() string {
	if t, ok := r.named.(reference.Tagged); ok {
		return t.Tag()
	}
	return ""
}

// Digest is the manifest digest r names, "" when it names none.
func (r Ref) Digest() string {
	if d, ok := r.named.(reference.Digested); ok {
		return d.Digest().String()
	}
	return ""
}

// Pinned reports whether r names a digest, so what it stands for cannot
// change.
func (r Ref) Pinned() bool { return r.Digest() != "" }

// Familiar is r as users write it, for display: "busybox:latest",
// "127.0.0.1:5000/app:1".
func (r Ref) Familiar() string {
	if r.named == nil {
		return ""
	}
	return reference.FamiliarString(r.named)
}

// Name is r without its digest: the name an image store keeps the image
// under ("docker.io/library/busybox:1"). A reference with only a digest
// keeps its repository.
func (r Ref) Name() string {
	if r.named == nil {
		return ""
	}
	if t := r.Tag(); t != "" {
		return r.Repository() + ":" + t
	}
	return r.Repository()
}

// WithDigest returns r's repository at manifest digest d, dropping any tag
// and digest r had: the reference that fetches exactly those bits.
func (r Ref) WithDigest(d string) (Ref, error) {
	if r.named == nil {
		return Ref{}, fmt.Errorf("image reference is empty")
	}
	dg, err := digest.Parse(d)
	if err != nil {
		return Ref{}, fmt.Errorf("image %s: digest %q: %w", r, d, err)
	}
	named, err := reference.WithDigest(reference.TrimNamed(r.named), dg)
	if err != nil {
		return Ref{}, fmt.Errorf("image %s: digest %q: %w", r, d, err)
	}
	return Ref{named: named}, nil
}

// ValidDigest checks that d is a digest ("sha256:<64 hex>").
func ValidDigest(d string) error {
	if _, err := digest.Parse(d); err != nil {
		return fmt.Errorf("digest %q: %w", d, err)
	}
	return nil
}
