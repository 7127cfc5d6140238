package build

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// tarOf writes hdrs as a tar; a regular file's body is its Linkname field
// when set, so one slice describes the whole archive.
func tarOf(t *testing.T, entries []tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		body := ""
		if h.Typeflag == tar.TypeReg {
			body, h.Linkname = h.Linkname, ""
			h.Size = int64(len(body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("write tar header %s: %v", h.Name, err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatalf("write tar body %s: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatalf("close tar: %v", err)
	}
	return buf.Bytes()
}

func TestExtractContext(t *testing.T) {
	tests := []struct {
		name    string
		entries []tar.Header
		wantErr bool
		// files maps paths under the context to their content; a value
		// of "->X" is a symbolic link to X.
		files map[string]string
		// absent must not exist, inside or (as absolute paths) outside.
		absent []string
	}{
		{
			name: "files, directories and links",
			entries: []tar.Header{
				{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
				{Name: "Dockerfile", Typeflag: tar.TypeReg, Linkname: "FROM scratch\n"},
				{Name: "src/app/main.sh", Typeflag: tar.TypeReg, Mode: 0o755, Linkname: "echo hi\n"},
				{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "src/app/main.sh"},
				{Name: "hard", Typeflag: tar.TypeLink, Linkname: "Dockerfile"},
			},
			files: map[string]string{
				"Dockerfile":      "FROM scratch\n",
				"src/app/main.sh": "echo hi\n",
				"link":            "->src/app/main.sh",
				"hard":            "FROM scratch\n",
			},
		},
		{
			name:    "a name that climbs out",
			entries: []tar.Header{{Name: "../escaped", Typeflag: tar.TypeReg, Linkname: "x"}},
			wantErr: true,
		},
		{
			name:    "a hard link to outside",
			entries: []tar.Header{{Name: "passwd", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"}},
			wantErr: true,
		},
		{
			name: "a write through a symbolic link leading out",
			entries: []tar.Header{
				{Name: "out", Typeflag: tar.TypeSymlink, Linkname: "/tmp"},
				{Name: "out/berth-build-escape-test", Typeflag: tar.TypeReg, Linkname: "x"},
			},
			wantErr: true,
			absent:  []string{"/tmp/berth-build-escape-test"},
		},
		{
			name: "an absolute name stays inside",
			entries: []tar.Header{
				{Name: "/abs/file", Typeflag: tar.TypeReg, Linkname: "in"},
			},
			files: map[string]string{"abs/file": "in"},
		},
		{
			name: "devices and fifos are skipped",
			entries: []tar.Header{
				{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3},
				{Name: "disk", Typeflag: tar.TypeBlock, Devmajor: 8},
				{Name: "pipe", Typeflag: tar.TypeFifo},
				{Name: "kept", Typeflag: tar.TypeReg, Linkname: "yes"},
			},
			files:  map[string]string{"kept": "yes"},
			absent: []string{"null", "disk", "pipe"},
		},
		{
			name: "a later entry replaces an earlier link",
			entries: []tar.Header{
				{Name: "target", Typeflag: tar.TypeReg, Linkname: "original"},
				{Name: "name", Typeflag: tar.TypeSymlink, Linkname: "target"},
				{Name: "name", Typeflag: tar.TypeReg, Linkname: "replaced"},
			},
			files: map[string]string{"target": "original", "name": "replaced"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			err := extractContext(bytes.NewReader(tarOf(t, tt.entries)), dir)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("extract: got %v, want an error wrapping ErrInvalid", err)
				}
			} else if err != nil {
				t.Fatalf("extract: %v", err)
			}
			for name, want := range tt.files {
				p := filepath.Join(dir, name)
				if target, ok := bytes.CutPrefix([]byte(want), []byte("->")); ok {
					got, err := os.Readlink(p)
					if err != nil || got != string(target) {
						t.Errorf("%s: link to %q (%v), want %q", name, got, err, target)
					}
					continue
				}
				got, err := os.ReadFile(p)
				if err != nil || string(got) != want {
					t.Errorf("%s: %q (%v), want %q", name, got, err, want)
				}
			}
			for _, name := range tt.absent {
				p := name
				if !filepath.IsAbs(p) {
					p = filepath.Join(dir, name)
				}
				if _, err := os.Lstat(p); err == nil {
					os.Remove(p)
					t.Errorf("%s exists; it should not", p)
				}
			}
		})
	}
}

func TestExtractContextKeepsModes(t *testing.T) {
	dir := t.TempDir()
	entries := []tar.Header{
		{Name: "bin/tool", Typeflag: tar.TypeReg, Mode: 0o775, Linkname: "#!/bin/sh\n"},
		{Name: "private", Typeflag: tar.TypeDir, Mode: 0o700},
	}
	if err := extractContext(bytes.NewReader(tarOf(t, entries)), dir); err != nil {
		t.Fatalf("extract: %v", err)
	}
	for name, want := range map[string]os.FileMode{"bin/tool": 0o775, "private": 0o700 | os.ModeDir} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("stat %s: %v", name, err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), want)
		}
	}
}
