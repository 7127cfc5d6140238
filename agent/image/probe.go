package image

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/berthproject/berth/api/imageref"
)

// probeTimeout bounds the check of one peer, so a dead peer delays a pull
// by seconds, not minutes.
const probeTimeout = 5 * time.Second

// manifestTypes are the manifest media types a probe accepts.
var manifestTypes = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}, ", ")

// httpProbe asks a peer's content server for ref's manifest with HEAD.
func httpProbe(tlsCfg *tls.Config) ProbeFunc {
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true}, Timeout: probeTimeout}
	return func(ctx context.Context, addr, ref, grant string) (string, error) {
		u, err := manifestURL(addr, ref)
		if err != nil {
			return "", err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
		if err != nil {
			return "", err
		}
		req.Header.Set("Accept", manifestTypes)
		req.Header.Set(HeaderPullGrant, grant)
		resp, err := client.Do(req)
		if err != nil {
			return "", fmt.Errorf("unreachable: %w", err)
		}
		resp.Body.Close()
		node := resp.Header.Get(HeaderNode)
		switch resp.StatusCode {
		case http.StatusOK:
			return node, nil
		case http.StatusNotFound:
			return node, ErrPeerLacksImage
		default:
			return node, fmt.Errorf("answered %s", resp.Status)
		}
	}
}

// manifestURL is where the content server at addr serves the manifest of
// ref, which must name a digest (peers serve nothing by tag): the path of
// the repository, with its registry host as the ns parameter.
func manifestURL(addr, ref string) (string, error) {
	r, err := imageref.Parse(ref)
	if err != nil {
		return "", err
	}
	if !r.Pinned() {
		return "", fmt.Errorf("image %s: peers are asked only for a digest", r)
	}
	u := url.URL{
		Scheme:   "https",
		Host:     addr,
		Path:     "/v2/" + r.Path() + "/manifests/" + r.Digest(),
		RawQuery: url.Values{"ns": {r.Host()}}.Encode(),
	}
	return u.String(), nil
}
