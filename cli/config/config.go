// Package config reads and writes the file that tells the berth CLI how to
// reach a cluster: the server address and the admin client certificate.
package config

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"sigs.k8s.io/yaml"
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
	Certificate string `json:"certificate"`
	Key         string `json:"key"`
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

// Load reads the config at path and checks that it names a server and
// holds usable credentials.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no Berth config at %s: start `berth dev` or `berth server`, or pass --config", path)
	}
	if err != nil {
		return nil, fmt.Errorf("read Berth config: %w", err)
	}
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("config file %s is not valid: %w", path, err)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("config file %s: %w; recreate it with `berth dev` or `berth server`", path, err)
	}
	return &c, nil
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

// Save writes c to path atomically (a temporary file renamed over it), making
// the directory with mode 0700 and the file with mode 0600.
func Save(path string, c *Config) error {
	data, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode Berth config: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create config directory: %w", err)
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write Berth config: %w", err)
	}
	defer os.Remove(f.Name()) // no-op after a successful rename
	// CreateTemp already makes the file 0600; Chmod keeps that true even
	// if its behavior changes, since the file holds a private key.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write Berth config: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write Berth config: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write Berth config: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write Berth config: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write Berth config: %w", err)
	}
	return nil
}

// Dial returns a client connection to c.Server over mutual TLS. Like
// grpc.NewClient it does not connect yet: an unreachable server shows up
// as an Unavailable error on the first call.
func (c *Config) Dial(ctx context.Context, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	tc, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tc))}, opts...)
	conn, err := grpc.NewClient(c.Server, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", c.Server, err)
	}
	return conn, nil
}

func (c *Config) tlsConfig() (*tls.Config, error) {
	cert, err := tls.X509KeyPair([]byte(c.Certificate), []byte(c.Key))
	if err != nil {
		return nil, fmt.Errorf("client certificate and key: %w", err)
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
		Certificates: []tls.Certificate{cert},
		RootCAs:      roots,
		ServerName:   name,
		MinVersion:   tls.VersionTLS12,
	}, nil
}
