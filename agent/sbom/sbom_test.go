package sbom

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// writeTree writes files (path → content) under a temp dir.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const dpkgStatus = `Package: libssl3
Status: install ok installed
Source: openssl
Version: 3.0.11-1~deb12u1
Architecture: amd64

Package: bash
Status: install ok installed
Version: 5.2.15-2+b2
Architecture: amd64

Package: gone
Status: deinstall ok config-files
Version: 1.0-1
Architecture: amd64
`

const apkInstalled = `P:libcrypto3
V:3.1.4-r0
o:openssl
A:x86_64

P:busybox
V:1.36.1-r15
o:busybox
A:x86_64

`

func TestReadDebian(t *testing.T) {
	root := writeTree(t, map[string]string{
		"etc/os-release":      "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
		"var/lib/dpkg/status": dpkgStatus,
	})
	got, err := Read(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	if got.OsId != "debian" || got.OsVersion != "12" {
		t.Errorf("os = %q %q, want debian 12", got.OsId, got.OsVersion)
	}
	type row struct{ name, bin, version, eco string }
	var rows []row
	for _, p := range got.Packages {
		rows = append(rows, row{p.Name, p.BinaryName, p.Version, p.Ecosystem})
	}
	want := []row{
		{"bash", "", "5.2.15-2+b2", "Debian:12"},
		{"openssl", "libssl3", "3.0.11-1~deb12u1", "Debian:12"},
	}
	if len(rows) != len(want) {
		t.Fatalf("packages = %+v, want %+v", rows, want)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("package %d = %+v, want %+v", i, rows[i], want[i])
		}
	}
	if got.Packages[0].Location != "/var/lib/dpkg/status" {
		t.Errorf("location = %q", got.Packages[0].Location)
	}
}

func TestReadAlpine(t *testing.T) {
	root := writeTree(t, map[string]string{
		"etc/os-release":       "ID=alpine\nVERSION_ID=3.19.0\n",
		"lib/apk/db/installed": apkInstalled,
	})
	got, err := Read(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Packages) != 2 {
		t.Fatalf("packages = %v", got.Packages)
	}
	p := got.Packages[1]
	if p.Name != "openssl" || p.BinaryName != "libcrypto3" || p.Version != "3.1.4-r0" || p.Ecosystem != "Alpine:v3.19" {
		t.Errorf("package = %v, want openssl (libcrypto3) 3.1.4-r0 in Alpine:v3.19", p)
	}
}

func TestReadEmptyTree(t *testing.T) {
	got, err := Read(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Packages) != 0 || got.OsId != "" {
		t.Errorf("sbom of an empty tree = %v", got)
	}
}

func TestMatchName(t *testing.T) {
	for _, c := range []struct{ name, eco, want string }{
		{"go", "Go", "stdlib"},
		{"golang.org/x/net", "Go", "golang.org/x/net"},
		{"Django_Rest.Framework", "PyPI", "django-rest-framework"},
		{"go", "Debian:12", "go"},
	} {
		if got := MatchName(c.name, c.eco); got != c.want {
			t.Errorf("MatchName(%q, %q) = %q, want %q", c.name, c.eco, got, c.want)
		}
	}
}

// TestReadStaysInTheImage reads no file of the machine through a link
// that points out of the image.
func TestReadStaysInTheImage(t *testing.T) {
	host := writeTree(t, map[string]string{"status": "Package: hostpkg\nStatus: install ok installed\nVersion: 1.0\n\n"})
	root := writeTree(t, map[string]string{"etc/os-release": "ID=debian\nVERSION_ID=12\n"})
	if err := os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(host, "status"), filepath.Join(root, "var/lib/dpkg/status")); err != nil {
		t.Fatal(err)
	}
	got, err := Read(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range got.Packages {
		if p.Name == "hostpkg" {
			t.Fatalf("the SBOM read the machine's file through a link: %v", p)
		}
	}
}

// TestReadSkipsProc leaves /proc alone, as the image's own is empty.
func TestReadSkipsProc(t *testing.T) {
	root := writeTree(t, map[string]string{
		"etc/os-release":         "ID=debian\nVERSION_ID=12\n",
		"proc/1/root/app/go.mod": "module example.com/app\n\ngo 1.22\n\nrequire golang.org/x/net v0.1.0\n",
		"srv/app/go.mod":         "module example.com/app\n\ngo 1.22\n\nrequire golang.org/x/text v0.3.0\n",
	})
	got, err := Read(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got.Packages {
		names = append(names, p.Name)
	}
	if !slices.Contains(names, "golang.org/x/text") || slices.Contains(names, "golang.org/x/net") {
		t.Errorf("packages = %v, want golang.org/x/text from /srv and nothing from /proc", names)
	}
}
