package clientconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"

	"sigs.k8s.io/yaml"
)

// DefaultContext names the cluster held at the top level of a config file:
// the one `berth server` or `berth dev` wrote there.
const DefaultContext = "default"

// EnvContext is the environment variable that chooses a context for one
// command, as --context does.
const EnvContext = "BERTH_CONTEXT"

// File is a whole config file. Its top-level fields are the default
// context, so a file written before contexts existed reads unchanged as a
// file holding only that one. Contexts holds the other clusters by name
// (added by `berth context import`), and Current names the one commands
// use; empty means the default context.
//
//	server: 127.0.0.1:7443     # the default context
//	ca: ...
//	current: prod
//	contexts:
//	  prod:
//	    server: prod-1.example.net:7443
//	    ca: ...
type File struct {
	Config
	Current  string
	Contexts map[string]*Config
}

// fileYAML is File as stored. It spells out the default context's fields
// rather than embedding Config, because the YAML decoder only keeps a
// value such as "y" or "on" a string when it sees the field's type, which
// it does not look for through an embedded struct.
type fileYAML struct {
	Server      string             `json:"server,omitempty"`
	ServerName  string             `json:"serverName,omitempty"`
	CA          string             `json:"ca,omitempty"`
	Certificate string             `json:"certificate,omitempty"`
	Key         string             `json:"key,omitempty"`
	Token       string             `json:"token,omitempty"`
	Namespace   string             `json:"namespace,omitempty"`
	Current     string             `json:"current,omitempty"`
	Contexts    map[string]*Config `json:"contexts,omitempty"`
}

// contextName is what a context may be called: it shows in tables and is
// typed on command lines, so letters, digits, '.', '_' and '-' only.
var contextName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ReadFile reads the config file at path without checking its contexts.
// A missing file is an error that wraps fs.ErrNotExist.
func ReadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no Berth config at %s: start `berth dev` or `berth server`, or pass --config: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("read Berth config: %w", err)
	}
	var y fileYAML
	if err := yaml.UnmarshalStrict(data, &y); err != nil {
		return nil, fmt.Errorf("config file %s is not valid: %w", path, err)
	}
	return &File{
		Config: Config{
			Server: y.Server, ServerName: y.ServerName, CA: y.CA,
			Certificate: y.Certificate, Key: y.Key, Token: y.Token, Namespace: y.Namespace,
		},
		Current:  y.Current,
		Contexts: y.Contexts,
	}, nil
}

// LoadContext reads the config file at path and returns its context
// called name, or its current one when name is empty, checked as Load
// checks it.
func LoadContext(path, name string) (*Config, error) {
	f, err := ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// The message says what to do; the wrapped error adds only noise.
			return nil, fmt.Errorf("no Berth config at %s: start `berth dev` or `berth server`, or pass --config", path)
		}
		return nil, err
	}
	name, c, err := f.Context(name)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if err := c.validate(); err != nil {
		if name == DefaultContext {
			return nil, fmt.Errorf("config file %s: %w; recreate it with `berth dev` or `berth server`", path, err)
		}
		return nil, fmt.Errorf("config file %s, context %q: %w; import it again with `berth context import %s FILE`", path, name, err, name)
	}
	return c, nil
}

// Context returns the context called name, or the current one when name
// is empty, with its name.
func (f *File) Context(name string) (string, *Config, error) {
	if name == "" {
		name = f.Current
	}
	if name == "" || name == DefaultContext {
		if !f.HasDefault() && len(f.Contexts) > 0 {
			return DefaultContext, nil, fmt.Errorf("the default context is empty; choose one of %v with `berth context use NAME`", f.Names())
		}
		c := f.Config
		return DefaultContext, &c, nil
	}
	c, ok := f.Contexts[name]
	if !ok || c == nil {
		return name, nil, fmt.Errorf("no context %q; `berth context ls` lists them", name)
	}
	return name, c, nil
}

// HasDefault reports whether the file holds a default context, which a file
// made only by `berth context import` does not.
func (f *File) HasDefault() bool { return f.Server != "" }

// CurrentName is the name of the current context.
func (f *File) CurrentName() string {
	if f.Current == "" {
		return DefaultContext
	}
	return f.Current
}

// Names lists the file's contexts: the default one first when it is
// there, then the others sorted.
func (f *File) Names() []string {
	var names []string
	if f.HasDefault() {
		names = append(names, DefaultContext)
	}
	return append(names, slices.Sorted(maps.Keys(f.Contexts))...)
}

// Add stores c as the context called name, replacing one of that name only
// when replace is set.
func (f *File) Add(name string, c *Config, replace bool) error {
	if err := CheckContextName(name); err != nil {
		return err
	}
	if _, ok := f.Contexts[name]; ok && !replace {
		return fmt.Errorf("context %q exists; pass --force to replace it, or choose another name", name)
	}
	if err := c.validate(); err != nil {
		return fmt.Errorf("context %q: %w", name, err)
	}
	if f.Contexts == nil {
		f.Contexts = map[string]*Config{}
	}
	f.Contexts[name] = c
	return nil
}

// Remove deletes the context called name; when it was the current one,
// the default context becomes current.
func (f *File) Remove(name string) error {
	if name == DefaultContext {
		return errors.New("the default context is the cluster `berth server` or `berth dev` wrote; it cannot be removed")
	}
	if _, ok := f.Contexts[name]; !ok {
		return fmt.Errorf("no context %q; `berth context ls` lists them", name)
	}
	delete(f.Contexts, name)
	if f.Current == name {
		f.Current = ""
	}
	return nil
}

// Use makes the context called name the current one.
func (f *File) Use(name string) error {
	if _, _, err := f.Context(name); err != nil {
		return err
	}
	if name == DefaultContext {
		if !f.HasDefault() {
			return errors.New("the default context is empty: start `berth dev` or `berth server` to make it")
		}
		name = ""
	}
	f.Current = name
	return nil
}

// CheckContextName says what is wrong with name as the name of a new
// context, if anything.
func CheckContextName(name string) error {
	if name == DefaultContext {
		return fmt.Errorf("context name %q is reserved for the cluster `berth server` or `berth dev` writes; choose another", name)
	}
	if !contextName.MatchString(name) {
		return fmt.Errorf("context name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", name)
	}
	return nil
}

// WriteFile writes f to path atomically (a temporary file renamed over
// it), making the directory with mode 0700 and the file with mode 0600,
// since it holds private keys.
func WriteFile(path string, f *File) error {
	data, err := yaml.Marshal(fileYAML{
		Server: f.Server, ServerName: f.ServerName, CA: f.CA,
		Certificate: f.Certificate, Key: f.Key, Token: f.Token, Namespace: f.Namespace,
		Current: f.Current, Contexts: f.Contexts,
	})
	if err != nil {
		return fmt.Errorf("encode Berth config: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create config directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write Berth config: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	// CreateTemp already makes the file 0600; Chmod keeps that true even
	// if its behavior changes, since the file holds a private key.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write Berth config: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write Berth config: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write Berth config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write Berth config: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write Berth config: %w", err)
	}
	return nil
}
