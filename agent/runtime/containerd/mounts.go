package containerd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/agent/files"
	"github.com/berthproject/berth/agent/runtime"
	"github.com/berthproject/berth/agent/volume"
)

// InitTarget is where the init of a container with Options.Init is
// mounted; it runs as PID 1 and starts the container's command.
const InitTarget = "/sbin/berth-init"

// volumeRefs lists the named volumes spec mounts.
func volumeRefs(spec runtime.ContainerSpec) []volume.Ref {
	var refs []volume.Ref
	for _, m := range spec.Mounts {
		if m.Type == runtime.MountVolume && m.Source != "" {
			refs = append(refs, volume.Ref{Namespace: spec.Namespace, Name: m.Source})
		}
	}
	return refs
}

// checkStorage refuses, before anything is made, what withStorage could
// not mount.
func (c *Runtime) checkStorage(spec runtime.ContainerSpec) error {
	for _, m := range spec.Mounts {
		if !path.IsAbs(m.Target) {
			return fmt.Errorf("mount target %q: want an absolute path", m.Target)
		}
		switch m.Type {
		case runtime.MountVolume:
			if m.Source != "" {
				if err := (volume.Ref{Namespace: spec.Namespace, Name: m.Source}).Validate(); err != nil {
					return err
				}
			}
		case runtime.MountBind:
			if !path.IsAbs(m.Source) {
				return fmt.Errorf("bind mount source %q: want an absolute path of the node", m.Source)
			}
		case runtime.MountTmpfs:
		default:
			return fmt.Errorf("mount at %s: unknown type %d", m.Target, m.Type)
		}
	}
	for _, f := range spec.Files {
		if !path.IsAbs(f.Target) {
			return fmt.Errorf("%s: want an absolute target", f)
		}
	}
	if spec.Options.Init {
		if _, err := os.Stat(c.cfg.InitPath); err != nil {
			return fmt.Errorf("init: the container's init %s is missing (Debian package tini; `make setup` installs it): %w", c.cfg.InitPath, err)
		}
	}
	return nil
}

// withStorage mounts spec's volumes, node paths, tmpfs, secret and config
// files, and init. A named volume is made on first use and, unless
// NoCopy, filled with what the image holds at the mount's target (read
// from the container's new snapshot, mounted read-only). Create has
// marked the named volumes used (Acquire) before, so none can be removed
// meanwhile; releaseStorage undoes the rest.
func (c *Runtime) withStorage(spec runtime.ContainerSpec) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, cont *containers.Container, s *oci.Spec) error {
		copyUp := func(target string) volume.Fill {
			return func(dir string) error {
				mounts, err := client.SnapshotService(cont.Snapshotter).Mounts(ctx, cont.SnapshotKey)
				if err != nil {
					return fmt.Errorf("image of the container: %w", err)
				}
				return mount.WithReadonlyTempMount(ctx, mounts, func(root string) error {
					return volume.CopyUp(dir, root, target)
				})
			}
		}
		var mounts []specs.Mount
		for i, m := range spec.Mounts {
			target := path.Clean(m.Target)
			switch m.Type {
			case runtime.MountVolume:
				var fill volume.Fill
				if !m.NoCopy {
					fill = copyUp(target)
				}
				var data string
				var err error
				if m.Source == "" {
					data, err = c.cfg.Volumes.Scratch(spec.ID, i, fill)
				} else {
					data, _, err = c.cfg.Volumes.Ensure(volume.Ref{Namespace: spec.Namespace, Name: m.Source}, fill)
				}
				if err != nil {
					return fmt.Errorf("volume at %s: %w", target, err)
				}
				src, err := volume.Subpath(data, m.Subpath)
				if err != nil {
					return fmt.Errorf("volume at %s: %w", target, err)
				}
				mounts = append(mounts, bindMount(src, target, m.ReadOnly))
			case runtime.MountBind:
				if _, err := os.Stat(m.Source); err != nil {
					return fmt.Errorf("bind mount of %s at %s: %w", m.Source, target, err)
				}
				mounts = append(mounts, bindMount(m.Source, target, m.ReadOnly))
			case runtime.MountTmpfs:
				mounts = append(mounts, tmpfsMount(target, m))
			}
		}
		if len(spec.Files) > 0 {
			paths, err := c.cfg.Files.Write(spec.ID, spec.Files)
			if err != nil {
				return err
			}
			for i, f := range spec.Files {
				mounts = append(mounts, specs.Mount{
					Destination: path.Clean(f.Target), Type: "bind", Source: paths[i],
					Options: []string{"rbind", "rprivate", "ro", "nosuid", "nodev", "noexec"},
				})
			}
		}
		if spec.Options.Init {
			mounts = append(mounts, bindMount(c.cfg.InitPath, InitTarget, true))
			s.Process.Args = append([]string{InitTarget, "--"}, s.Process.Args...)
		}
		addMounts(s, mounts)
		return nil
	}
}

// addMounts puts mounts after the spec's own, replacing those at the same
// places (a volume at /run takes the place of the default tmpfs), parents
// before their children.
func addMounts(s *oci.Spec, mounts []specs.Mount) {
	if len(mounts) == 0 {
		return
	}
	s.Mounts = slices.DeleteFunc(s.Mounts, func(d specs.Mount) bool {
		return slices.ContainsFunc(mounts, func(m specs.Mount) bool { return m.Destination == path.Clean(d.Destination) })
	})
	slices.SortStableFunc(mounts, func(a, b specs.Mount) int {
		return cmp.Compare(depth(a.Destination), depth(b.Destination))
	})
	s.Mounts = append(s.Mounts, mounts...)
}

func depth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

func bindMount(src, target string, readOnly bool) specs.Mount {
	opts := []string{"rbind", "rprivate"}
	if readOnly {
		opts = append(opts, "ro")
	}
	return specs.Mount{Destination: target, Type: "bind", Source: src, Options: opts}
}

func tmpfsMount(target string, m runtime.Mount) specs.Mount {
	mode := m.TmpfsMode & 0o7777
	if m.TmpfsMode == 0 {
		mode = 0o1777
	}
	opts := []string{"nosuid", "nodev", "mode=" + strconv.FormatUint(uint64(mode), 8)}
	if m.TmpfsSize > 0 {
		opts = append(opts, "size="+strconv.FormatInt(m.TmpfsSize, 10))
	}
	if m.ReadOnly {
		opts = append(opts, "ro")
	}
	return specs.Mount{Destination: target, Type: "tmpfs", Source: "tmpfs", Options: opts}
}

// releaseStorage undoes what Create prepared for container id: its marks
// on named volumes, its files' tmpfs and its scratch volumes. Idempotent.
func (c *Runtime) releaseStorage(id string) error {
	c.cfg.Volumes.Release(id)
	return errors.Join(c.cfg.Files.Remove(id), c.cfg.Volumes.RemoveScratch(id))
}

// openStorage makes the volume store and the files' tmpfs set when the
// config gives none, marks the volumes that this runtime's containers use
// (they outlive the agent: a restarted one must not let them be removed),
// and removes the files and scratch volumes of containers that are gone.
func (c *Runtime) openStorage(ctx context.Context) error {
	var err error
	if c.cfg.Volumes == nil {
		if c.cfg.Volumes, err = volume.New(c.cfg.StateDir, nil); err != nil {
			return fmt.Errorf("runtime: %w", err)
		}
	}
	if c.cfg.Files == nil {
		if c.cfg.Files, err = files.NewDirs("", c.cfg.Owner); err != nil {
			return fmt.Errorf("runtime: %w", err)
		}
	}
	infos, err := c.client.ContainerService().List(c.ctx(ctx), fmt.Sprintf("labels.%q==%q", LabelOwner, c.cfg.Owner))
	if err != nil {
		return fmt.Errorf("runtime: list containers: %w", err)
	}
	exists := map[string]bool{}
	for _, info := range infos {
		if info.Labels[LabelOwner] != c.cfg.Owner {
			continue
		}
		exists[info.ID] = true
		// The label is this runtime's own writing; were it broken, its
		// volumes could only be removed while in use, which the node's
		// RemoveVolume refuses anyway once the control plane sees a task.
		refs, _ := volume.ParseLabel(info.Labels[volume.Label])
		c.cfg.Volumes.Acquire(info.ID, refs...)
	}
	withFiles, err := c.cfg.Files.List()
	if err != nil {
		return fmt.Errorf("runtime: %w", err)
	}
	withScratch, err := c.cfg.Volumes.ScratchContainers()
	if err != nil {
		return fmt.Errorf("runtime: %w", err)
	}
	for _, id := range slices.Concat(withFiles, withScratch) {
		if !exists[id] {
			if err := c.releaseStorage(id); err != nil {
				return fmt.Errorf("runtime: container %s is gone: %w", id, err)
			}
		}
	}
	return nil
}
