package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"

	"github.com/berthproject/berth/api/imageref"
)

// Errors Check returns, wrapped.
var (
	// ErrUnauthorized: the registry refused the credential (HTTP 401/403).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrUnreachable: the registry did not answer (network, TLS, timeout).
	ErrUnreachable = errors.New("registry unreachable")
)

// RemoteTimeout bounds each conversation with a registry the control
// plane has (a login check, a tag resolution): an apply or a login must
// not hang on a registry that does not answer.
const RemoteTimeout = 10 * time.Second

func httpClient() *http.Client {
	return &http.Client{Timeout: RemoteTimeout, Transport: docker.DefaultHTTPTransport(nil)}
}

// apiHost is the host that serves a registry's API.
func apiHost(registry string) string {
	if registry == DockerHub {
		return "registry-1.docker.io"
	}
	return registry
}

// Check logs in to registry (normalized) as username, as a client does
// before it stores a credential: GET /v2/, answer the registry's challenge
// (basic, or a bearer token from its token service) and GET /v2/ again.
// It returns nil when the registry accepts the credential or asks for
// none, an error wrapping ErrUnauthorized when it refuses it, and one
// wrapping ErrUnreachable when it cannot be asked.
func Check(ctx context.Context, registry, username, password string, insecure bool) error {
	ctx, cancel := context.WithTimeout(ctx, RemoteTimeout)
	defer cancel()
	client := httpClient()
	scheme := "https"
	if insecure {
		scheme = "http"
	}
	url := scheme + "://" + apiHost(registry) + "/v2/"
	get := func() (*http.Request, error) { return http.NewRequestWithContext(ctx, http.MethodGet, url, nil) }

	req, err := get()
	if err != nil {
		return fmt.Errorf("registry %s: %w", registry, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnreachable, registry, err)
	}
	drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusUnauthorized:
	default:
		return fmt.Errorf("%w: %s answered %s to GET /v2/ (is it a registry?)", ErrUnreachable, registry, resp.Status)
	}
	authorizer := docker.NewDockerAuthorizer(
		docker.WithAuthClient(client),
		docker.WithAuthCreds(func(string) (string, string, error) { return username, password, nil }),
	)
	if err := authorizer.AddResponses(ctx, []*http.Response{resp}); err != nil {
		return fmt.Errorf("registry %s: its authentication challenge: %w", registry, err)
	}
	req, err = get()
	if err != nil {
		return fmt.Errorf("registry %s: %w", registry, err)
	}
	if err := authorizer.Authorize(ctx, req); err != nil {
		// A bearer token service refuses with its own status.
		if se := (remoteerrors.ErrUnexpectedStatus{}); errors.As(err, &se) && (se.StatusCode == http.StatusUnauthorized || se.StatusCode == http.StatusForbidden) {
			return fmt.Errorf("%w: %s refused user %q (%s)", ErrUnauthorized, registry, username, se.Status)
		}
		return fmt.Errorf("%w: %s: getting a token: %w", ErrUnreachable, registry, err)
	}
	resp, err = client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnreachable, registry, err)
	}
	drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%w: %s refused user %q (%s)", ErrUnauthorized, registry, username, resp.Status)
	}
	return fmt.Errorf("%w: %s answered %s to an authenticated GET /v2/", ErrUnreachable, registry, resp.Status)
}

func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// Resolve asks image's registry which manifest digest its tag points to
// (a HEAD of the manifest), with the stored credential and the insecure
// setting. An image that names a digest resolves to it without asking.
func (c *Credentials) Resolve(ctx context.Context, image string) (string, error) {
	ref, err := imageref.Parse(image)
	if err != nil {
		return "", err
	}
	if ref.Pinned() {
		return ref.Digest(), nil
	}
	host, err := Normalize(ref.Host())
	if err != nil {
		return "", err
	}
	user, secret, _, err := c.Lookup(host)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, RemoteTimeout)
	defer cancel()
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(
			docker.WithClient(httpClient()),
			docker.WithAuthorizer(docker.NewDockerAuthorizer(
				docker.WithAuthClient(httpClient()),
				docker.WithAuthCreds(func(string) (string, string, error) { return user, secret, nil }),
			)),
			docker.WithPlainHTTP(func(string) (bool, error) { return c.Insecure(host), nil }),
		),
	})
	_, desc, err := resolver.Resolve(ctx, ref.String())
	if err != nil {
		return "", fmt.Errorf("resolving %s at %s: %w", image, host, err)
	}
	return desc.Digest.String(), nil
}
