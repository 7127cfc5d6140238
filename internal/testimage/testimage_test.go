package testimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// readArchive returns the archive's entries by name, checking that every
// blob's name is its digest.
func readArchive(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	entries := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read archive: %v", err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read %s: %v", hdr.Name, err)
		}
		entries[hdr.Name] = body
	}
	return entries
}

func blob(t *testing.T, entries map[string][]byte, d ocispec.Descriptor) []byte {
	t.Helper()
	b, ok := entries[blobPath(d)]
	if !ok {
		t.Fatalf("archive has no blob %s", d.Digest)
	}
	if got := digest.FromBytes(b); got != d.Digest || int64(len(b)) != d.Size {
		t.Fatalf("blob %s: digest %s size %d, descriptor says size %d", d.Digest, got, len(b), d.Size)
	}
	return b
}

func TestWriteOCIArchive(t *testing.T) {
	tests := []struct {
		ref, wantName, wantTag string
	}{
		{"busybox", "docker.io/library/busybox:latest", "latest"},
		{"localhost/busybox:latest", "localhost/busybox:latest", "latest"},
		{"example.test/team/app:v2", "example.test/team/app:v2", "v2"},
	}
	files := []File{
		{Path: "/bin/tool", Mode: 0o755, Content: []byte("#!/bin/sh\n")},
		{Path: "/bin/alias", Linkname: "tool"},
		{Path: "/tmp", Mode: os.ModeDir | os.ModeSticky | 0o777},
		{Path: "/www/deep/index.html", Content: []byte("hi")},
	}
	cfg := Config{Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}, WorkingDir: "/www", User: "nobody", ExposedPorts: []string{"80/tcp"}}

	for _, tc := range tests {
		t.Run(tc.ref, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteOCIArchive(&buf, tc.ref, files, cfg); err != nil {
				t.Fatalf("WriteOCIArchive: %v", err)
			}
			entries := readArchive(t, buf.Bytes())
			if _, ok := entries[ocispec.ImageLayoutFile]; !ok {
				t.Fatalf("archive has no %s", ocispec.ImageLayoutFile)
			}

			var index ocispec.Index
			if err := json.Unmarshal(entries[ocispec.ImageIndexFile], &index); err != nil {
				t.Fatalf("decode index: %v", err)
			}
			if len(index.Manifests) != 1 {
				t.Fatalf("index has %d manifests, want 1", len(index.Manifests))
			}
			md := index.Manifests[0]
			if got := md.Annotations[annotationImageName]; got != tc.wantName {
				t.Errorf("image name annotation = %q, want %q", got, tc.wantName)
			}
			if got := md.Annotations[ocispec.AnnotationRefName]; got != tc.wantTag {
				t.Errorf("ref name annotation = %q, want %q", got, tc.wantTag)
			}

			var manifest ocispec.Manifest
			if err := json.Unmarshal(blob(t, entries, md), &manifest); err != nil {
				t.Fatalf("decode manifest: %v", err)
			}
			var img ocispec.Image
			if err := json.Unmarshal(blob(t, entries, manifest.Config), &img); err != nil {
				t.Fatalf("decode config: %v", err)
			}
			if img.OS != "linux" || img.Config.User != "nobody" || img.Config.WorkingDir != "/www" || len(img.Config.Cmd) != 1 {
				t.Errorf("config = %+v, want linux, user nobody, workdir /www, cmd [sh]", img)
			}
			if _, ok := img.Config.ExposedPorts["80/tcp"]; !ok {
				t.Errorf("exposed ports = %v, want 80/tcp", img.Config.ExposedPorts)
			}

			if len(manifest.Layers) != 1 {
				t.Fatalf("manifest has %d layers, want 1", len(manifest.Layers))
			}
			gz, err := gzip.NewReader(bytes.NewReader(blob(t, entries, manifest.Layers[0])))
			if err != nil {
				t.Fatalf("open layer: %v", err)
			}
			raw, err := io.ReadAll(gz)
			if err != nil {
				t.Fatalf("decompress layer: %v", err)
			}
			if got := digest.FromBytes(raw); len(img.RootFS.DiffIDs) != 1 || img.RootFS.DiffIDs[0] != got {
				t.Errorf("diff ids = %v, want [%s]", img.RootFS.DiffIDs, got)
			}
			checkLayer(t, raw)
		})
	}
}

// checkLayer checks the layer's entries: implied parents come before their
// children, with the modes and link targets asked for.
func checkLayer(t *testing.T, raw []byte) {
	t.Helper()
	want := map[string]struct {
		typ  byte
		mode int64
		link string
	}{
		"bin/":                {tar.TypeDir, 0o755, ""},
		"bin/tool":            {tar.TypeReg, 0o755, ""},
		"bin/alias":           {tar.TypeSymlink, 0o777, "tool"},
		"tmp/":                {tar.TypeDir, 0o1777, ""},
		"www/":                {tar.TypeDir, 0o755, ""},
		"www/deep/":           {tar.TypeDir, 0o755, ""},
		"www/deep/index.html": {tar.TypeReg, 0o644, ""},
	}
	seen := map[string]bool{}
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read layer: %v", err)
		}
		w, ok := want[hdr.Name]
		if !ok {
			t.Errorf("unexpected layer entry %q", hdr.Name)
			continue
		}
		if hdr.Typeflag != w.typ || hdr.Mode != w.mode || hdr.Linkname != w.link {
			t.Errorf("%s: type %c mode %o link %q, want type %c mode %o link %q", hdr.Name, hdr.Typeflag, hdr.Mode, hdr.Linkname, w.typ, w.mode, w.link)
		}
		seen[hdr.Name] = true
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("layer has no %s", name)
		}
	}
}

func TestWriteOCIArchiveReproducible(t *testing.T) {
	files := []File{{Path: "/a", Content: []byte("a")}, {Path: "/d/b", Content: []byte("b")}}
	var first, second bytes.Buffer
	if err := WriteOCIArchive(&first, "localhost/x:1", files, Config{}); err != nil {
		t.Fatal(err)
	}
	if err := WriteOCIArchive(&second, "localhost/x:1", []File{files[1], files[0]}, Config{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bytes(), second.Bytes()) {
		t.Errorf("two builds of the same files differ")
	}
}

func TestWriteOCIArchiveErrors(t *testing.T) {
	tests := []struct {
		name  string
		ref   string
		files []File
	}{
		{"bad reference", "Not A Ref", nil},
		{"duplicate path", "x", []File{{Path: "/a"}, {Path: "a"}}},
		{"root path", "x", []File{{Path: "/"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := WriteOCIArchive(io.Discard, tc.ref, tc.files, Config{}); err == nil {
				t.Errorf("WriteOCIArchive succeeded, want error")
			}
		})
	}
}

func TestBusyboxFiles(t *testing.T) {
	const busybox = "/usr/bin/busybox"
	if _, err := os.Stat(busybox); err != nil {
		t.Skipf("%s not installed (apt-get install busybox-static): %v", busybox, err)
	}
	files, err := BusyboxFiles(busybox)
	if err != nil {
		t.Fatalf("BusyboxFiles: %v", err)
	}
	byPath := map[string]File{}
	for _, f := range files {
		byPath[f.Path] = f
	}
	if f := byPath["/bin/sh"]; f.Linkname != "busybox" {
		t.Errorf("/bin/sh links to %q, want busybox", f.Linkname)
	}
	if f := byPath["/bin/busybox"]; len(f.Content) == 0 || f.Mode.Perm() != 0o755 {
		t.Errorf("/bin/busybox: %d bytes mode %v, want the binary with mode 0755", len(f.Content), f.Mode)
	}
	if f := byPath["/www/index.html"]; string(f.Content) != IndexHTML {
		t.Errorf("/www/index.html = %q, want %q", f.Content, IndexHTML)
	}
	if f := byPath["/etc/passwd"]; !bytes.Contains(f.Content, []byte("nobody:x:65534:65534:")) {
		t.Errorf("/etc/passwd has no nobody user: %q", f.Content)
	}
	if err := WriteOCIArchive(io.Discard, "localhost/busybox:latest", files, Config{Cmd: []string{"sh"}}); err != nil {
		t.Errorf("WriteOCIArchive of busybox files: %v", err)
	}
}

func TestMarshalConfigHealthcheck(t *testing.T) {
	hc := &HealthConfig{Test: []string{"CMD-SHELL", "true"}, Interval: 2 * time.Second, Retries: 4}
	tests := []struct {
		name string
		hc   *HealthConfig
	}{
		{"none", nil},
		{"set", hc},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := marshalConfig(Config{User: "nobody", Healthcheck: tc.hc}, digest.FromString("layer"))
			if err != nil {
				t.Fatalf("marshalConfig: %v", err)
			}
			var got struct {
				OS     string `json:"os"`
				Config struct {
					User        string        `json:"User"`
					Healthcheck *HealthConfig `json:"Healthcheck"`
				} `json:"config"`
			}
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatalf("decode config: %v", err)
			}
			if got.OS != "linux" || got.Config.User != "nobody" {
				t.Errorf("config = %s, want os linux and user nobody", raw)
			}
			if !reflect.DeepEqual(got.Config.Healthcheck, tc.hc) {
				t.Errorf("Healthcheck = %+v, want %+v (config %s)", got.Config.Healthcheck, tc.hc, raw)
			}
		})
	}
}
