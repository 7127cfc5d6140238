// Package sbom lists the packages of an image's file tree with
// osv-scalibr's extractors: OS package databases (dpkg, apk, rpm), Go
// binaries' build info and language lock files. Each package carries the
// name and OSV ecosystem a vulnerability database matches it by.
package sbom

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"strings"

	cpb "github.com/google/osv-scalibr/binary/proto/config_go_proto"
	"github.com/google/osv-scalibr/extractor"
	"github.com/google/osv-scalibr/extractor/filesystem"
	"github.com/google/osv-scalibr/extractor/filesystem/language/golang/gobinary"
	"github.com/google/osv-scalibr/extractor/filesystem/language/golang/gomod"
	"github.com/google/osv-scalibr/extractor/filesystem/language/javascript/packagelockjson"
	"github.com/google/osv-scalibr/extractor/filesystem/language/python/requirements"
	"github.com/google/osv-scalibr/extractor/filesystem/language/python/wheelegg"
	"github.com/google/osv-scalibr/extractor/filesystem/os/apk"
	apkmeta "github.com/google/osv-scalibr/extractor/filesystem/os/apk/metadata"
	"github.com/google/osv-scalibr/extractor/filesystem/os/dpkg"
	dpkgmeta "github.com/google/osv-scalibr/extractor/filesystem/os/dpkg/metadata"
	"github.com/google/osv-scalibr/extractor/filesystem/os/rpm"
	scalibrfs "github.com/google/osv-scalibr/fs"
	scalibrlog "github.com/google/osv-scalibr/log"
	"github.com/google/osv-scalibr/stats"
	"google.golang.org/protobuf/types/known/timestamppb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// Generator names the library that reads packages, for the SBOM.
const Generator = "osv-scalibr v0.5.3"

// extractorsFor are the extractors run on an image, cheapest to ask
// first: each only opens the files it claims by path.
var extractorsFor = []func(*cpb.PluginConfig) (filesystem.Extractor, error){
	dpkg.New, apk.New, rpm.New, // OS package databases
	gobinary.New,                   // Go binaries' build info
	gomod.New,                      // go.mod
	packagelockjson.New,            // npm's package-lock.json
	requirements.New, wheelegg.New, // Python
}

// skipDirs are never read: they are empty in images, and a mount of the
// host's would make a scan read the machine instead.
var skipDirs = []string{"proc", "sys", "dev"}

func init() {
	// The library logs every walk on the standard logger; the agent logs
	// with slog, and only what goes wrong.
	scalibrlog.SetLogger(quietLog{})
}

// quietLog passes the library's warnings and errors to slog at debug
// level (a file it cannot parse is not the agent's error) and drops the
// rest.
type quietLog struct{}

func (quietLog) Errorf(format string, args ...any) {
	slog.Debug("sbom: " + fmt.Sprintf(format, args...))
}
func (quietLog) Error(args ...any) { slog.Debug("sbom: " + fmt.Sprint(args...)) }
func (quietLog) Warnf(format string, args ...any) {
	slog.Debug("sbom: " + fmt.Sprintf(format, args...))
}
func (quietLog) Warn(args ...any)      { slog.Debug("sbom: " + fmt.Sprint(args...)) }
func (quietLog) Infof(string, ...any)  {}
func (quietLog) Info(...any)           {}
func (quietLog) Debugf(string, ...any) {}
func (quietLog) Debug(...any)          {}

// Read lists the packages of the file tree at root (an image's root file
// system, mounted read-only).
func Read(ctx context.Context, root string) (*berthv1.Sbom, error) {
	var exs []filesystem.Extractor
	for _, mk := range extractorsFor {
		ex, err := mk(&cpb.PluginConfig{})
		if err != nil {
			return nil, fmt.Errorf("sbom: extractor: %w", err)
		}
		exs = append(exs, ex)
	}
	// The image is read through os.Root: a symbolic link in it that
	// points out of it (an absolute one, or ../ past its root) fails to
	// open instead of reading the node's own files. Without a path, the
	// library copies what it must hand to a file-based reader (rpm's
	// database) out through the same view.
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	defer r.Close()
	fsys, ok := r.FS().(scalibrfs.FS)
	if !ok {
		return nil, errors.New("sbom: the image's file view cannot list folders")
	}
	inv, _, err := filesystem.Run(ctx, &filesystem.Config{
		Extractors: exs,
		ScanRoots:  []*scalibrfs.ScanRoot{{FS: fsys}},
		DirsToSkip: skipDirs,
		Stats:      stats.NoopCollector{},
	})
	if err != nil {
		return nil, fmt.Errorf("sbom: reading %s: %w", root, err)
	}
	out := &berthv1.Sbom{Generator: Generator, CreatedAt: timestamppb.Now()}
	osr, err := readOSRelease(root)
	if err != nil {
		return nil, err
	}
	out.OsId, out.OsVersion, out.OsName = osr["ID"], osr["VERSION_ID"], osr["PRETTY_NAME"]
	for _, p := range inv.Packages {
		out.Packages = append(out.Packages, convert(p))
	}
	sort.Slice(out.Packages, func(i, j int) bool {
		a, b := out.Packages[i], out.Packages[j]
		if a.Ecosystem != b.Ecosystem {
			return a.Ecosystem < b.Ecosystem
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.BinaryName != b.BinaryName {
			return a.BinaryName < b.BinaryName
		}
		return a.Location < b.Location
	})
	return out, nil
}

// convert makes a scalibr package an SBOM entry, named as OSV names it.
func convert(p *extractor.Package) *berthv1.SbomPackage {
	eco := p.Ecosystem().String()
	out := &berthv1.SbomPackage{
		Name:      MatchName(p.Name, eco),
		Version:   p.Version,
		Ecosystem: eco,
	}
	if u := p.PURL(); u != nil {
		out.Purl = u.String()
	}
	if len(p.Location.PathOrEmpty()) > 0 {
		out.Location = "/" + strings.TrimPrefix(p.Location.PathOrEmpty(), "/")
	}
	// OSV's Debian and Alpine records name source packages.
	switch m := p.Metadata.(type) {
	case *dpkgmeta.Metadata:
		if m.SourceName != "" && m.SourceName != p.Name {
			out.Name, out.BinaryName = m.SourceName, p.Name
		}
	case *apkmeta.Metadata:
		if m.OriginName != "" && m.OriginName != p.Name {
			out.Name, out.BinaryName = m.OriginName, p.Name
		}
	}
	return out
}

var pythonSeparators = regexp.MustCompile(`[-_.]+`)

// MatchName is the name OSV's records of ecosystem give a package called
// name: Go's toolchain is "stdlib", PyPI names are normalised (PEP 503).
func MatchName(name, ecosystem string) string {
	switch ecosystem {
	case "Go":
		if name == "go" {
			return "stdlib"
		}
	case "PyPI":
		return strings.ToLower(pythonSeparators.ReplaceAllLiteralString(name, "-"))
	}
	return name
}

// readOSRelease reads /etc/os-release (or /usr/lib/os-release) inside
// root; symbolic links stay inside it. An image without one has none.
func readOSRelease(root string) (map[string]string, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	defer r.Close()
	out := map[string]string{}
	for _, name := range []string{"etc/os-release", "usr/lib/os-release"} {
		f, err := r.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return out, nil // unreadable or a link out of the image: no OS known
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
			if !ok || strings.HasPrefix(k, "#") {
				continue
			}
			out[k] = strings.Trim(v, `"'`)
		}
		return out, nil
	}
	return out, nil
}
