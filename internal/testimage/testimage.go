// Package testimage builds container image archives offline, from files on
// this machine, so tests and `make images` never need a registry.
//
// The archives are OCI image layouts in a tar stream (what `berth image
// import` and the agent's runtime accept), with one gzip layer and a config
// for linux on the running architecture. Builds are reproducible: the same
// inputs give the same digests.
package testimage

import (
	"archive/tar"
	"bytes"
	"cmp"
	"compress/gzip"
	_ "crypto/sha256" // registers sha256 for go-digest
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthproject/berth/api/imageref"
)

// annotationImageName is the index annotation the import side reads for the
// image's full name.
const annotationImageName = "io.containerd.image.name"

// epoch is the modification time of every entry, so builds are reproducible.
var epoch = time.Unix(0, 0).UTC()

// File is one entry of the image's only layer. Parent directories are
// implied (created 0755) unless listed themselves.
type File struct {
	// Path is absolute inside the image, like "/bin/busybox".
	Path string
	// Mode holds the permission bits; fs.ModeDir makes a directory and
	// fs.ModeSticky the sticky bit. Zero means 0644 (0755 for directories).
	Mode fs.FileMode
	// Content is the body of a regular file.
	Content []byte
	// Linkname makes the entry a symbolic link to Linkname.
	Linkname string
}

// Config is the image configuration the runtime starts containers from.
type Config struct {
	Env          []string
	Entrypoint   []string
	Cmd          []string
	WorkingDir   string
	User         string
	ExposedPorts []string // like "80/tcp"
	Labels       map[string]string
	// Healthcheck is the image's HEALTHCHECK, written as Docker writes it
	// (config.Healthcheck); nil writes none.
	Healthcheck *HealthConfig
}

// HealthConfig is an image's HEALTHCHECK in Docker's image config format;
// durations are encoded in nanoseconds.
type HealthConfig struct {
	Test          []string      `json:"Test,omitempty"`
	Interval      time.Duration `json:"Interval,omitempty"`
	Timeout       time.Duration `json:"Timeout,omitempty"`
	StartPeriod   time.Duration `json:"StartPeriod,omitempty"`
	StartInterval time.Duration `json:"StartInterval,omitempty"`
	Retries       int           `json:"Retries,omitempty"`
}

// WriteOCIArchive writes an OCI image layout tar of one image named ref
// (normalized: "busybox" becomes docker.io/library/busybox:latest) holding
// files in one layer and cfg as its configuration.
func WriteOCIArchive(w io.Writer, ref string, files []File, cfg Config) error {
	named, err := imageref.Parse(ref)
	if err != nil {
		return fmt.Errorf("testimage: %w", err)
	}
	tag := cmp.Or(named.Tag(), imageref.DefaultTag)

	layer, diffID, err := buildLayer(files)
	if err != nil {
		return err
	}
	layerDesc := descriptor(ocispec.MediaTypeImageLayerGzip, layer)

	configBlob, err := marshalConfig(cfg, diffID)
	if err != nil {
		return fmt.Errorf("testimage: encode config: %w", err)
	}
	configDesc := descriptor(ocispec.MediaTypeImageConfig, configBlob)

	manifestBlob, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    []ocispec.Descriptor{layerDesc},
	})
	if err != nil {
		return fmt.Errorf("testimage: encode manifest: %w", err)
	}
	manifestDesc := descriptor(ocispec.MediaTypeImageManifest, manifestBlob)
	manifestDesc.Platform = &ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"}
	manifestDesc.Annotations = map[string]string{
		annotationImageName:       named.String(),
		ocispec.AnnotationRefName: tag,
	}

	indexBlob, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{manifestDesc},
	})
	if err != nil {
		return fmt.Errorf("testimage: encode index: %w", err)
	}
	layoutBlob, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return fmt.Errorf("testimage: encode layout: %w", err)
	}

	return writeArchive(w, []string{"blobs/", "blobs/sha256/"}, []archiveEntry{
		{ocispec.ImageLayoutFile, layoutBlob},
		{ocispec.ImageIndexFile, indexBlob},
		{blobPath(layerDesc), layer},
		{blobPath(configDesc), configBlob},
		{blobPath(manifestDesc), manifestBlob},
	})
}

// archiveEntry is one file of an image archive.
type archiveEntry struct {
	name string
	data []byte
}

// writeArchive writes an image archive: the directories dirs, then the
// files, all with fixed times so the same image makes the same bytes.
func writeArchive(w io.Writer, dirs []string, entries []archiveEntry) error {
	tw := tar.NewWriter(w)
	for _, dir := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: epoch}); err != nil {
			return fmt.Errorf("testimage: write archive: %w", err)
		}
	}
	for _, e := range entries {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: 0o644, Size: int64(len(e.data)), ModTime: epoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("testimage: write archive: %w", err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return fmt.Errorf("testimage: write archive: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("testimage: write archive: %w", err)
	}
	return nil
}

func descriptor(mediaType string, blob []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
}

func blobPath(d ocispec.Descriptor) string {
	return path.Join("blobs", d.Digest.Algorithm().String(), d.Digest.Encoded())
}

// marshalConfig encodes the image config. Only an image with a health
// check gets the Docker extension, so other images keep their digests.
func marshalConfig(cfg Config, diffID digest.Digest) ([]byte, error) {
	img := imageConfig(cfg, diffID)
	if cfg.Healthcheck == nil {
		return json.Marshal(img)
	}
	return json.Marshal(healthImage{Image: img, Config: healthImageConfig{img.Config, cfg.Healthcheck}})
}

// healthImage is an OCI image config with Docker's config.Healthcheck: its
// Config shadows the embedded one in JSON.
type healthImage struct {
	ocispec.Image
	Config healthImageConfig `json:"config"`
}

type healthImageConfig struct {
	ocispec.ImageConfig
	Healthcheck *HealthConfig `json:"Healthcheck"`
}

func imageConfig(cfg Config, diffID digest.Digest) ocispec.Image {
	created := epoch
	img := ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"},
		Config: ocispec.ImageConfig{
			Env:        cfg.Env,
			Entrypoint: cfg.Entrypoint,
			Cmd:        cfg.Cmd,
			WorkingDir: cfg.WorkingDir,
			User:       cfg.User,
			Labels:     cfg.Labels,
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
	}
	if len(cfg.ExposedPorts) > 0 {
		img.Config.ExposedPorts = make(map[string]struct{}, len(cfg.ExposedPorts))
		for _, p := range cfg.ExposedPorts {
			img.Config.ExposedPorts[p] = struct{}{}
		}
	}
	return img
}

// buildLayer returns the gzip-compressed layer tar and the digest of the
// uncompressed tar (the config's diff id).
func buildLayer(files []File) (layer []byte, diffID digest.Digest, err error) {
	entries, err := layerEntries(files)
	if err != nil {
		return nil, "", err
	}
	var compressed bytes.Buffer
	gz := gzip.NewWriter(&compressed)
	digester := digest.Canonical.Digester()
	tw := tar.NewWriter(io.MultiWriter(gz, digester.Hash()))
	for _, f := range entries {
		if err := writeLayerEntry(tw, f); err != nil {
			return nil, "", fmt.Errorf("testimage: layer entry %s: %w", f.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", fmt.Errorf("testimage: close layer: %w", err)
	}
	if err := gz.Close(); err != nil {
		return nil, "", fmt.Errorf("testimage: compress layer: %w", err)
	}
	return compressed.Bytes(), digester.Digest(), nil
}

// layerEntries cleans the paths, adds the implied parent directories and
// sorts parents before children, so the tar unpacks in one pass.
func layerEntries(files []File) ([]File, error) {
	byPath := make(map[string]File, len(files))
	for _, f := range files {
		p := path.Clean("/" + f.Path)
		if p == "/" {
			return nil, fmt.Errorf("testimage: file path %q names the root directory", f.Path)
		}
		if _, dup := byPath[p]; dup {
			return nil, fmt.Errorf("testimage: file %s listed twice", p)
		}
		f.Path = p
		byPath[p] = f
	}
	for p := range byPath {
		for dir := path.Dir(p); dir != "/"; dir = path.Dir(dir) {
			if _, ok := byPath[dir]; !ok {
				byPath[dir] = File{Path: dir, Mode: fs.ModeDir | 0o755}
			}
		}
	}
	out := make([]File, 0, len(byPath))
	for _, f := range byPath {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func writeLayerEntry(tw *tar.Writer, f File) error {
	hdr := &tar.Header{
		Name:    strings.TrimPrefix(f.Path, "/"),
		ModTime: epoch,
	}
	perm := int64(f.Mode.Perm())
	if f.Mode&fs.ModeSticky != 0 {
		perm |= 0o1000
	}
	switch {
	case f.Linkname != "":
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = f.Linkname
		hdr.Mode = 0o777
	case f.Mode.IsDir():
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		hdr.Mode = perm
		if f.Mode.Perm() == 0 {
			hdr.Mode |= 0o755
		}
	default:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = int64(len(f.Content))
		hdr.Mode = perm
		if f.Mode.Perm() == 0 {
			hdr.Mode |= 0o644
		}
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeReg {
		_, err := tw.Write(f.Content)
		return err
	}
	return nil
}
