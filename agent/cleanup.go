package agent

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/berthproject/berth/agent/files"
	"github.com/berthproject/berth/agent/network"
	"github.com/berthproject/berth/agent/runtime"
	ctdruntime "github.com/berthproject/berth/agent/runtime/containerd"
	"github.com/berthproject/berth/api/identity"
)

// CleanupConfig says whose leftovers Cleanup removes, and how far it goes.
type CleanupConfig struct {
	// Name and DataDir are the node's, as its agent ran with them.
	Name, DataDir string
	// ContainerdAddress and ContainerdNamespace are where its containers
	// run; defaults as the agent's.
	ContainerdAddress, ContainerdNamespace string
	// Images also removes every image of the containerd namespace, which
	// other agents of this machine in the same namespace may share.
	Images bool
	// Volumes also removes the node's named volumes (DataDir/volumes);
	// without it they are kept, with the data dir around them.
	Volumes bool
	// Removed is told of each thing removed, as a short line.
	Removed func(what string)
}

// Cleanup removes what the agent of a node left on this machine after it
// stopped for good: its containers (killed, with their snapshots, leases,
// logs and secret mounts), with Images the namespace's images, its
// container network (veths, network namespaces, the VXLAN device, the
// nftables table, the CNI state) and its data dir. It refuses while an
// agent runs on the data dir. The node stays in the cluster's list until
// berth node rm.
func Cleanup(ctx context.Context, cfg CleanupConfig) error {
	if cfg.DataDir == "" || cfg.Name == "" {
		return errors.New("agent cleanup: the node's --name and --data-dir are needed")
	}
	if cfg.Removed == nil {
		cfg.Removed = func(string) {}
	}
	if _, err := os.Stat(cfg.DataDir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("agent cleanup: no data dir %s: give the --data-dir (and --name) the agent ran with", cfg.DataDir)
	}
	release, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer release()

	var errs []error
	if id := nodeIDIn(cfg.DataDir); id != "" {
		errs = append(errs, cleanupContainers(ctx, cfg, id))
	}
	if err := network.Remove(cfg.Name, cfg.DataDir, ""); err != nil {
		errs = append(errs, fmt.Errorf("network of node %s: %w", cfg.Name, err))
	} else {
		cfg.Removed(fmt.Sprintf("network of node %s (links, network namespaces, overlay device, nftables table)", cfg.Name))
	}
	if err := errors.Join(errs...); err != nil {
		// The data dir holds the records that name what is left: kept
		// for another try.
		return fmt.Errorf("agent cleanup: %w; the data dir %s is kept, run the cleanup again", err, cfg.DataDir)
	}
	return removeDataDir(cfg)
}

// cleanupContainers kills and removes the containers of node id, their
// secret mounts, and with cfg.Images the namespace's images.
func cleanupContainers(ctx context.Context, cfg CleanupConfig, id string) error {
	dirs, err := files.NewDirs(files.DefaultRoot, id)
	if err != nil {
		return err
	}
	rt, err := ctdruntime.New(ctx, ctdruntime.Config{Address: cfg.ContainerdAddress, Namespace: cfg.ContainerdNamespace, Owner: id,
		StateDir: filepath.Join(cfg.DataDir, "runtime"), Files: dirs})
	if err != nil {
		return fmt.Errorf("containerd: %w", err)
	}
	defer rt.Close()
	containers, err := rt.List(ctx)
	if err != nil {
		return fmt.Errorf("listing containers: %w", err)
	}
	var errs []error
	for _, c := range containers {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := rt.Stop(cctx, c.ID, "SIGKILL", 0)
		if err == nil || errors.Is(err, runtime.ErrNotFound) {
			err = rt.Remove(cctx, c.ID)
		}
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("container %s: %w", c.ID, err))
			continue
		}
		cfg.Removed("container " + c.ID)
	}
	left, err := dirs.List()
	errs = append(errs, err)
	for _, c := range left {
		errs = append(errs, dirs.Remove(c))
	}
	if err := os.Remove(filepath.Dir(dirs.Dir("x"))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	if cfg.Images {
		images, err := rt.ListImages(ctx)
		errs = append(errs, err)
		for _, img := range images {
			if err := rt.RemoveImage(ctx, img.Name); err != nil {
				errs = append(errs, fmt.Errorf("image %s: %w", img.Name, err))
				continue
			}
			cfg.Removed("image " + img.Name)
		}
	}
	return errors.Join(errs...)
}

// removeDataDir removes the data dir, but for its volumes unless
// cfg.Volumes.
func removeDataDir(cfg CleanupConfig) error {
	entries, err := os.ReadDir(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("agent cleanup: %w", err)
	}
	kept := false
	for _, e := range entries {
		if e.Name() == "volumes" && !cfg.Volumes && holdsVolumes(filepath.Join(cfg.DataDir, e.Name())) {
			kept = true
			continue
		}
		if e.Name() == lockFile {
			continue
		}
		if err := os.RemoveAll(filepath.Join(cfg.DataDir, e.Name())); err != nil {
			return fmt.Errorf("agent cleanup: %w", err)
		}
	}
	if kept {
		_ = os.Remove(filepath.Join(cfg.DataDir, lockFile))
		cfg.Removed(fmt.Sprintf("data dir %s, but for its volumes (--volumes removes them)", cfg.DataDir))
		return nil
	}
	// The lock file goes last: removed while held, which is fine on Linux.
	if err := os.RemoveAll(cfg.DataDir); err != nil {
		return fmt.Errorf("agent cleanup: %w", err)
	}
	cfg.Removed("data dir " + cfg.DataDir)
	return nil
}

// holdsVolumes reports whether the volumes dir holds a volume
// (volumes/NAMESPACE/NAME), not only the empty folders an agent makes.
func holdsVolumes(dir string) bool {
	namespaces, _ := os.ReadDir(dir)
	for _, ns := range namespaces {
		if vols, _ := os.ReadDir(filepath.Join(dir, ns.Name())); len(vols) > 0 {
			return true
		}
	}
	return false
}

// nodeIDIn is the node id of the certificate in dataDir, or "" when there
// is none (the agent never joined).
func nodeIDIn(dataDir string) string {
	b, err := os.ReadFile(filepath.Join(dataDir, "pki", "node.crt"))
	if err != nil {
		return ""
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return ""
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return ""
	}
	who, err := identity.FromCertificate(cert)
	if err != nil {
		return ""
	}
	return who.ID
}
