package clientconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/testpki"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	pki := testpki.New(t)
	path := filepath.Join(t.TempDir(), "nested", "config")
	want := &Config{
		Server:      "127.0.0.1:7443",
		ServerName:  "berth-server",
		CA:          pki.CA,
		Certificate: pki.ClientCert,
		Key:         pki.ClientKey,
		Namespace:   "team-a",
	}
	if err := Save(path, want); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if *got != *want {
		t.Errorf("Load = %+v, want %+v", got, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("file mode = %o, want 600", mode)
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatalf("stat dir: %v", err)
	}
	if mode := di.Mode().Perm(); mode != 0o700 {
		t.Errorf("dir mode = %o, want 700", mode)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatalf("read dir: %v", err)
	}
	if len(entries) != 1 {
		t.Errorf("config dir holds %d entries, want only the config (temporary file left behind?)", len(entries))
	}
}

func TestLoadErrors(t *testing.T) {
	pki := testpki.New(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	noServer := &Config{CA: pki.CA, Certificate: pki.ClientCert, Key: pki.ClientKey}
	if err := Save(filepath.Join(dir, "no-server"), noServer); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		want string
	}{
		{"missing", filepath.Join(dir, "absent"), "no Berth config at " + filepath.Join(dir, "absent") + ": start `berth dev` or `berth server`, or pass --config"},
		{"not yaml", write("garbage", "server: [unclosed"), "is not valid"},
		{"unknown field", write("unknown", "server: a:1\nsurprise: 1\n"), "surprise"},
		{"no server", filepath.Join(dir, "no-server"), "server is empty"},
		{"bad key", write("bad-key", "server: a:1\nca: x\ncertificate: y\nkey: z\n"), "client certificate and key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDefaultPath(t *testing.T) {
	t.Setenv(EnvPath, "/tmp/elsewhere/config")
	if got := DefaultPath(); got != "/tmp/elsewhere/config" {
		t.Errorf("DefaultPath with $%s = %q", EnvPath, got)
	}
	t.Setenv(EnvPath, "")
	t.Setenv("HOME", "/home/someone")
	if got := DefaultPath(); got != "/home/someone/.berth/config" {
		t.Errorf("DefaultPath = %q, want /home/someone/.berth/config", got)
	}
}
