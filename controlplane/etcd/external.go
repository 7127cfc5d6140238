package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// ClientTLS is how the server authenticates an external etcd cluster and
// itself to it: PEM files, as etcdctl's --cacert, --cert and --key take.
type ClientTLS struct {
	// CAFile holds the certificates that sign the etcd members' serving
	// certificates; empty trusts the system's roots.
	CAFile string
	// CertFile and KeyFile are the server's client certificate and key,
	// for an etcd that checks client certificates (--client-cert-auth).
	CertFile, KeyFile string
}

// IsZero reports whether no TLS option is set.
func (t ClientTLS) IsZero() bool { return t == ClientTLS{} }

// Connect returns a client of the external etcd cluster at endpoints,
// checked to be reachable. Endpoints are https:// (with tlsFiles), or
// http:// only on loopback: the cluster's whole state, sealed secrets
// included, travels on this connection.
func Connect(ctx context.Context, endpoints []string, tlsFiles ClientTLS) (*clientv3.Client, error) {
	secure, err := CheckEndpoints(endpoints, tlsFiles)
	if err != nil {
		return nil, err
	}
	cfg := clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	}
	if secure {
		if cfg.TLS, err = tlsFiles.config(); err != nil {
			return nil, err
		}
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd at %v: %w", endpoints, err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Get(sctx, "/berth/health-check"); err != nil {
		cli.Close()
		hint := ""
		if secure {
			hint = "; check --etcd-cacert (the CA of etcd's serving certificates) and --etcd-cert/--etcd-key (a client certificate etcd's --trusted-ca-file signs)"
		}
		return nil, fmt.Errorf("etcd at %v does not answer: %w%s", endpoints, err, hint)
	}
	return cli, nil
}

// CheckEndpoints checks that endpoints and the TLS options go together,
// and reports whether the connection uses TLS. It refuses plain HTTP to
// anything but a loopback address, a mix of plain and TLS endpoints, TLS
// options with plain endpoints, and a certificate without its key.
func CheckEndpoints(endpoints []string, t ClientTLS) (secure bool, err error) {
	if len(endpoints) == 0 {
		return false, errors.New("--etcd-endpoints: no endpoint given")
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return false, errors.New("--etcd-cert and --etcd-key go together: give both the client certificate and its key, or neither")
	}
	var plain, tlsEPs []string
	for _, ep := range endpoints {
		scheme, host, err := splitEndpoint(ep, !t.IsZero())
		if err != nil {
			return false, err
		}
		switch scheme {
		case "https", "unixs":
			tlsEPs = append(tlsEPs, ep)
		case "http":
			if !isLoopback(host) {
				return false, fmt.Errorf("--etcd-endpoints: %s is plain HTTP to a machine other than this one, which would send the cluster's state unencrypted and unauthenticated over the network; use https:// with --etcd-cacert (and --etcd-cert/--etcd-key when etcd checks client certificates)", ep)
			}
			plain = append(plain, ep)
		case "unix":
			plain = append(plain, ep)
		default:
			return false, fmt.Errorf("--etcd-endpoints: %s has the scheme %q; use https://HOST:PORT (or http:// on loopback)", ep, scheme)
		}
	}
	switch {
	case len(plain) > 0 && len(tlsEPs) > 0:
		return false, fmt.Errorf("--etcd-endpoints mixes plain (%s) and TLS (%s) endpoints; use https:// for all of them", strings.Join(plain, ","), strings.Join(tlsEPs, ","))
	case len(plain) > 0 && !t.IsZero():
		return false, fmt.Errorf("--etcd-cacert, --etcd-cert and --etcd-key apply to https:// endpoints, but %s is plain; use https://", strings.Join(plain, ","))
	}
	return len(tlsEPs) > 0, nil
}

// splitEndpoint returns ep's scheme and host. An endpoint without a
// scheme is TLS when TLS options are set, as etcd's client takes it.
func splitEndpoint(ep string, tlsSet bool) (scheme, host string, err error) {
	if !strings.Contains(ep, "://") {
		scheme = "http"
		if tlsSet {
			scheme = "https"
		}
		ep = scheme + "://" + ep
	}
	u, err := url.Parse(ep)
	if err != nil {
		return "", "", fmt.Errorf("--etcd-endpoints: %q is not a URL like https://HOST:PORT: %w", ep, err)
	}
	if (u.Scheme == "http" || u.Scheme == "https") && u.Host == "" {
		return "", "", fmt.Errorf("--etcd-endpoints: %q names no host; use https://HOST:PORT", ep)
	}
	return u.Scheme, u.Hostname(), nil
}

// isLoopback reports whether host is this machine by its name or address.
// Other names are not resolved: what they resolve to can change.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// config is the TLS configuration of t; its errors name the flag to fix.
func (t ClientTLS) config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		b, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--etcd-cacert: %s holds no PEM certificate", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" {
		load := func() (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("--etcd-cert %s and --etcd-key %s: %w", t.CertFile, t.KeyFile, err)
			}
			return &c, nil
		}
		if _, err := load(); err != nil {
			return nil, err
		}
		// Read at each handshake, so a renewed certificate is used
		// without a restart.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return load() }
	}
	return cfg, nil
}
