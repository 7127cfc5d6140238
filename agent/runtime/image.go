package runtime

import (
	"crypto/tls"
	"net/http"
)

// Registry says how to reach the registry an image is pulled from or
// pushed to. The zero value reaches the registry the image's name names,
// over HTTPS, anonymously.
type Registry struct {
	// Host, when set, serves the image in place of the registry its name
	// names: a peer node's content address ("10.0.0.2:7946"). The
	// reference keeps its own name.
	Host string
	// TLS is the client configuration for Host; nil uses the system's
	// roots.
	TLS *tls.Config
	// Username and Secret authenticate to the registry (basic or token
	// auth, as the registry asks).
	Username, Secret string
	// PlainHTTP reaches the registry without TLS (an insecure registry).
	PlainHTTP bool
	// Header is sent with every request to the registry: a peer's pull
	// grant.
	Header http.Header
}

// Progress is how far an image transfer is, in bytes. Total grows as the
// manifest's blobs are discovered; Done includes blobs already present.
type Progress struct {
	Done, Total int64
}

// PullOptions configure Runtime.Pull.
type PullOptions struct {
	Registry
	// Name, when set, is the name the pulled image is stored under
	// instead of ref: pulling "web@sha256:..." with Name "web:1" makes
	// "web:1" run exactly that digest.
	Name string
	// Progress, when set, is called as bytes arrive, from one goroutine,
	// at most every few hundred milliseconds.
	Progress func(Progress)
}

// PushOptions configure Runtime.Push.
type PushOptions struct {
	Registry
	// Progress, when set, is called as blobs are sent.
	Progress func(Progress)
}
