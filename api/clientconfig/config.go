// Package clientconfig reads and writes the file that tells the berth CLI how to
// reach a cluster: the server address and the admin client certificate.
package clientconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// DefaultServerName is the name the server's certificate is issued for when
// the config does not say otherwise.
const DefaultServerName = "berth-server"

// EnvPath is the environment variable that overrides the config file's path.
const EnvPath = "BERTH_CONFIG"

// Config is what the CLI needs to reach a cluster. It is stored as YAML,
// by default in ~/.berth/config, readable by its owner only because it
// holds the admin client key.
type Config struct {
	// Server is the control plane's gRPC address (host:port).
	Server string `json:"server"`
	// ServerName is the name the server certificate is checked against;
	// empty means DefaultServerName.
	ServerName string `json:"serverName,omitempty"`
	// CA is the cluster CA certificate (PEM) that signed the server's certificate.
	CA string `json:"ca"`
	// Certificate and Key are the client certificate and key (PEM).
	Certificate string `json:"certificate,omitempty"`
	Key         string `json:"key,omitempty"`
	// Token is an API token (berth token create) to authenticate with
	// instead of a client certificate: it is sent with every call, over
	// TLS that verifies the server with CA.
	Token string `json:"token,omitempty"`
	// Namespace is the namespace commands use when -n is not given.
	Namespace string `json:"namespace,omitempty"`
}

// DefaultPath returns $BERTH_CONFIG when set, else ~/.berth/config.
func DefaultPath() string {
	if p := os.Getenv(EnvPath); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		// Without a home directory, a relative path is the only honest
		// answer; Load then explains that nothing is there.
		return filepath.Join(".berth", "config")
	}
	return filepath.Join(home, ".berth", "config")
}

// Load reads the config file at path and returns its current context (see
// File): the cluster `berth server` or `berth dev` wrote there unless
// `berth context use` chose another. It checks that the context names a
// server and holds usable credentials.
func Load(path string) (*Config, error) {
	return LoadContext(path, "")
}

func (c *Config) validate() error {
	if c.Server == "" {
		return errors.New("server is empty")
	}
	if _, err := c.tlsConfig(); err != nil {
		return err
	}
	return nil
}

// Save writes c to path as the file's default context and makes it the
// current one: a cluster just started is the one its owner talks to next,
// and a command meant for the cluster of another context must not reach it
// by surprise. The other contexts of the file are kept; a file that cannot
// be read is replaced, as before contexts existed.
func Save(path string, c *Config) error {
	f, err := ReadFile(path)
	if err != nil {
		f = &File{}
	}
	f.Config = *c
	f.Current = ""
	return WriteFile(path, f)
}

// Dial returns a client connection to c.Server over mutual TLS. Like
// grpc.NewClient it does not connect yet: an unreachable server shows up
// as an Unavailable error on the first call. Server may list several
// servers, comma-separated: the connection uses the first that answers,
// and another when it goes away (every server serves the API).
//
// With a Token, the connection presents no client certificate and sends
// the token with every call ("authorization: Bearer <token>"), which the
// server then trusts alone.
func (c *Config) Dial(ctx context.Context, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	tc, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tc))}, opts...)
	if c.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(BearerToken(c.Token)))
	}
	target := c.Server
	if addrs := strings.Split(c.Server, ","); len(addrs) > 1 {
		r := manual.NewBuilderWithScheme("berth")
		var state resolver.State
		for _, a := range addrs {
			state.Addresses = append(state.Addresses, resolver.Address{Addr: strings.TrimSpace(a)})
		}
		r.InitialState(state)
		opts = append(opts, grpc.WithResolvers(r))
		target = r.Scheme() + ":///servers"
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", c.Server, err)
	}
	return conn, nil
}

// BearerToken sends an API token with every call. It is only sent over
// TLS.
type BearerToken string

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b BearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (BearerToken) RequireTransportSecurity() bool { return true }

func (c *Config) tlsConfig() (*tls.Config, error) {
	var certs []tls.Certificate
	if c.Token == "" || c.Certificate != "" {
		cert, err := tls.X509KeyPair([]byte(c.Certificate), []byte(c.Key))
		if err != nil {
			if c.Certificate == "" && c.Key == "" {
				return nil, errors.New("it holds neither a client certificate nor an API token; use the config `berth server` or `berth user create` wrote, or give a token with --token or BERTH_TOKEN")
			}
			return nil, fmt.Errorf("client certificate and key: %w", err)
		}
		certs = []tls.Certificate{cert}
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(c.CA)) {
		return nil, errors.New("ca holds no PEM certificate")
	}
	name := c.ServerName
	if name == "" {
		name = DefaultServerName
	}
	return &tls.Config{
		Certificates: certs,
		RootCAs:      roots,
		ServerName:   name,
		MinVersion:   tls.VersionTLS12,
	}, nil
}
