package clientconfig

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/testpki"
)

func testConfig(t *testing.T, server string) *Config {
	t.Helper()
	pki := testpki.New(t)
	return &Config{Server: server, CA: pki.CA, Certificate: pki.ClientCert, Key: pki.ClientKey}
}

func TestContextsKeptAcrossSave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config")
	local, prod := testConfig(t, "127.0.0.1:7443"), testConfig(t, "10.0.0.1:7443")
	if err := Save(path, local); err != nil {
		t.Fatalf("Save: %v", err)
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatalf("ReadFile: %v", err)
	}
	if err := f.Add("prod", prod, false); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if err := f.Use("prod"); err != nil {
		t.Fatalf("Use: %v", err)
	}
	if err := WriteFile(path, f); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	if c, err := Load(path); err != nil || c.Server != prod.Server {
		t.Fatalf("Load after use prod = %v, %v; want server %s", c, err, prod.Server)
	}
	if c, err := LoadContext(path, DefaultContext); err != nil || c.Server != local.Server {
		t.Fatalf("LoadContext(default) = %v, %v; want server %s", c, err, local.Server)
	}

	// A server started again rewrites the default context, makes it
	// current and keeps prod.
	local.Server = "127.0.0.1:8443"
	if err := Save(path, local); err != nil {
		t.Fatalf("Save again: %v", err)
	}
	f, err = ReadFile(path)
	if err != nil {
		t.Fatalf("ReadFile: %v", err)
	}
	if got := f.Names(); !slices.Equal(got, []string{"default", "prod"}) {
		t.Errorf("Names = %v, want [default prod]", got)
	}
	if f.CurrentName() != DefaultContext || f.Server != "127.0.0.1:8443" {
		t.Errorf("after Save: current %q, server %q; want default, 127.0.0.1:8443", f.CurrentName(), f.Server)
	}
	if c, err := LoadContext(path, "prod"); err != nil || *c != *prod {
		t.Errorf("LoadContext(prod) = %v, %v; want %+v", c, err, prod)
	}
}

func TestSingleClusterFileReadsAsDefault(t *testing.T) {
	cfg := testConfig(t, "127.0.0.1:7443")
	// The shape written before contexts existed.
	body := "server: " + cfg.Server + "\nca: |\n" + indent(cfg.CA) + "certificate: |\n" + indent(cfg.Certificate) + "key: |\n" + indent(cfg.Key)
	path := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatalf("ReadFile: %v", err)
	}
	if got := f.Names(); !slices.Equal(got, []string{"default"}) || f.CurrentName() != DefaultContext {
		t.Errorf("Names = %v, current %q; want [default], default", got, f.CurrentName())
	}
	if c, err := Load(path); err != nil || *c != *cfg {
		t.Errorf("Load = %v, %v; want %+v", c, err, cfg)
	}
}

func indent(s string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		if line != "" {
			b.WriteString("  " + line)
		}
	}
	return b.String()
}

func TestContextErrors(t *testing.T) {
	prod := testConfig(t, "10.0.0.1:7443")
	onlyImported := &File{Contexts: map[string]*Config{"prod": prod}}
	withDefault := &File{Config: *testConfig(t, "127.0.0.1:7443"), Contexts: map[string]*Config{"prod": prod}}
	tests := []struct {
		name string
		do   func() error
		want string
	}{
		{"use unknown", func() error { return withDefault.Use("staging") }, `no context "staging"`},
		{"add default", func() error { return withDefault.Add("default", prod, false) }, "reserved"},
		{"add bad name", func() error { return withDefault.Add("a/b", prod, false) }, "use letters, digits"},
		{"add existing", func() error { return withDefault.Add("prod", prod, false) }, "--force"},
		{"add invalid", func() error { return withDefault.Add("empty", &Config{Server: "x:1"}, false) }, "client certificate"},
		{"remove default", func() error { return withDefault.Remove("default") }, "cannot be removed"},
		{"remove unknown", func() error { return withDefault.Remove("staging") }, `no context "staging"`},
		{"empty default", func() error { _, _, err := onlyImported.Context(""); return err }, "berth context use NAME"},
		{"use empty default", func() error { return (&File{}).Use("default") }, "default context is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestRemoveCurrentFallsBackToDefault(t *testing.T) {
	f := &File{Config: *testConfig(t, "127.0.0.1:7443")}
	if err := f.Add("prod", testConfig(t, "10.0.0.1:7443"), false); err != nil {
		t.Fatal(err)
	}
	if err := f.Use("prod"); err != nil {
		t.Fatal(err)
	}
	if err := f.Remove("prod"); err != nil {
		t.Fatal(err)
	}
	if f.CurrentName() != DefaultContext {
		t.Errorf("current after removing it = %q, want default", f.CurrentName())
	}
}
