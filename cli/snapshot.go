package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/snapshotfile"
)

// EnvSnapshotPassphrase is the environment variable that gives the
// passphrase of a snapshot's key, as --passphrase-file does.
const EnvSnapshotPassphrase = "BERTH_SNAPSHOT_PASSPHRASE"

func newSnapshotCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Back up the cluster's state, and restore a cluster from a backup",
		Long: `A snapshot is a consistent copy of the cluster's whole state (its etcd
database: nodes, apps, services, tasks, the CA, secrets sealed with the
key-encryption key), and, sealed with a passphrase, the key-encryption key
that opens those secrets. "berth snapshot restore" starts a new cluster
from one.`,
		GroupID: groupCluster,
	}
	requireSubcommand(cmd)
	cmd.AddCommand(newSnapshotSaveCommand(o), newSnapshotInspectCommand(), newSnapshotExtractCommand())
	return cmd
}

func newSnapshotSaveCommand(o *rootOptions) *cobra.Command {
	var passphraseFile string
	var withoutKey, force bool
	cmd := &cobra.Command{
		Use:   "save FILE [--passphrase-file F | --without-key]",
		Short: "Save a snapshot of the cluster to a file",
		Long: `Save a snapshot of the cluster to FILE (mode 0600, written whole or not
at all): a consistent etcd snapshot taken by the server through etcd's
maintenance API, with the cluster's key-encryption key sealed with a
passphrase (scrypt and AES-256-GCM), so that a restored cluster opens its
secrets. The passphrase comes from --passphrase-file, else
$` + EnvSnapshotPassphrase + `, else it is asked on the terminal (twice).

With --without-key the key is left out and no passphrase is needed: keep
the server's key file (berth server key prints it) apart, a restore needs
it. Keep snapshots and their passphrase in different places. Saving needs
the admin role.`,
		Example: `  berth snapshot save /backup/berth-$(date +%F).snapshot --passphrase-file /secure/passphrase
  berth snapshot save /backup/state.snapshot --without-key`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			if withoutKey && passphraseFile != "" {
				return usageErrorf("--without-key leaves the key out, so --passphrase-file has nothing to seal: give one or the other")
			}
			var passphrase []byte
			if !withoutKey {
				var err error
				if passphrase, err = ReadSnapshotPassphrase(cmd, passphraseFile, true); err != nil {
					return err
				}
			}
			f, err := snapshotfile.Create(path, force)
			if err != nil {
				return err
			}
			defer f.Abort()
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				h, err := c.saveSnapshot(ctx, f, &berthv1.SaveSnapshotRequest{Passphrase: passphrase, WithoutKey: withoutKey})
				if err != nil {
					return err
				}
				if err := f.Commit(); err != nil {
					return err
				}
				size := int64(0)
				if st, err := os.Stat(path); err == nil {
					size = st.Size()
				}
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "Saved a snapshot of cluster %s (etcd revision %d) to %s (%s).\n", h.ClusterID, h.EtcdRevision, path, bytesColumn(size))
				if h.Key != nil {
					fmt.Fprintln(out, "It carries the key-encryption key sealed with your passphrase: keep the passphrase apart from the file.")
				} else {
					fmt.Fprintln(out, "It does not carry the key-encryption key: a restore needs the server's key file (berth server key prints it); keep a copy apart from the file.")
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&passphraseFile, "passphrase-file", "", "file holding the passphrase that seals the key-encryption key (its final newline is dropped); default $"+EnvSnapshotPassphrase+", else asked on the terminal")
	cmd.Flags().BoolVar(&withoutKey, "without-key", false, "leave the key-encryption key out; a restore then needs the server's key file")
	cmd.Flags().BoolVar(&force, "force", false, "replace FILE when it exists")
	return cmd
}

// saveSnapshot receives a snapshot file into f, then reads it back whole to
// check it (and, with a passphrase, that the key opens) before it is kept.
func (c *cluster) saveSnapshot(ctx context.Context, f *snapshotfile.Pending, req *berthv1.SaveSnapshotRequest) (snapshotfile.Header, error) {
	stream, err := c.SaveSnapshot(ctx, req)
	if err != nil {
		return snapshotfile.Header{}, fmt.Errorf("snapshot save: %w", err)
	}
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return snapshotfile.Header{}, fmt.Errorf("snapshot save: %w", err)
		}
		if _, err := f.Write(chunk.GetData()); err != nil {
			return snapshotfile.Header{}, fmt.Errorf("snapshot save: writing %s: %w", f.Name(), err)
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return snapshotfile.Header{}, err
	}
	r, err := snapshotfile.NewReader(f)
	if err != nil {
		return snapshotfile.Header{}, fmt.Errorf("snapshot save: the file received does not read back: %w", err)
	}
	if err := r.CopyEtcd(io.Discard); err != nil {
		return snapshotfile.Header{}, fmt.Errorf("snapshot save: the file received does not read back: %w", err)
	}
	if !req.WithoutKey {
		kek, err := r.Header.OpenKey(req.Passphrase)
		if err != nil {
			return snapshotfile.Header{}, fmt.Errorf("snapshot save: the key in the file received does not open: %w", err)
		}
		clear(kek)
	}
	return r.Header, nil
}

// snapshotInfo is a snapshot's header as inspect prints it.
type snapshotInfo struct {
	File               string    `json:"file"`
	Size               int64     `json:"size"`
	ClusterID          string    `json:"cluster_id"`
	ServerAddress      string    `json:"server_address,omitempty"`
	Created            time.Time `json:"created"`
	BerthVersion       string    `json:"berth_version"`
	EtcdRevision       int64     `json:"etcd_revision"`
	EtcdStorageVersion string    `json:"etcd_storage_version,omitempty"`
	EtcdSize           int64     `json:"etcd_size"`
	EtcdSHA256         string    `json:"etcd_sha256"`
	// Key says how the key-encryption key is kept: "sealed (scrypt,
	// aes-256-gcm)" or "none".
	Key string `json:"key"`
}

func newSnapshotInspectCommand() *cobra.Command {
	var out *outputFormat
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Show what a snapshot file says about itself, without the passphrase",
		Long: `Show a snapshot file's header: the cluster it was taken of, when, by which
Berth, etcd's revision and the checksum of the etcd snapshot, and whether
it carries the key-encryption key. No passphrase and no server are needed;
the etcd part is not checked (restore and extract-etcd check it).`,
		Example: `  berth snapshot inspect /backup/state.snapshot
  berth snapshot inspect /backup/state.snapshot -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			r, err := snapshotfile.NewReader(f)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			st, err := f.Stat()
			if err != nil {
				return err
			}
			h := r.Header
			info := snapshotInfo{
				File: args[0], Size: st.Size(), ClusterID: h.ClusterID, ServerAddress: h.ServerAddress, Created: h.Created, BerthVersion: h.BerthVersion,
				EtcdRevision: h.EtcdRevision, EtcdStorageVersion: h.EtcdStorageVersion, EtcdSize: h.EtcdSize, EtcdSHA256: h.EtcdSHA256,
				Key: "none (a restore needs the server's key file)",
			}
			if k := h.Key; k != nil {
				info.Key = fmt.Sprintf("sealed with a passphrase (%s, %s)", k.KDF, k.Cipher)
			}
			if *out == formatJSON || *out == formatYAML {
				return printList(cmd.OutOrStdout(), *out, info, nil)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "File:            %s (%s)\n", info.File, bytesColumn(info.Size))
			fmt.Fprintf(w, "Cluster:         %s\n", info.ClusterID)
			if info.ServerAddress != "" {
				fmt.Fprintf(w, "Server address:  %s\n", info.ServerAddress)
			}
			fmt.Fprintf(w, "Taken:           %s\n", info.Created.Local().Format(time.RFC3339))
			fmt.Fprintf(w, "Berth version:   %s\n", info.BerthVersion)
			fmt.Fprintf(w, "etcd revision:   %d\n", info.EtcdRevision)
			if info.EtcdStorageVersion != "" {
				fmt.Fprintf(w, "etcd storage:    %s\n", info.EtcdStorageVersion)
			}
			fmt.Fprintf(w, "etcd snapshot:   %s, sha256 %s\n", bytesColumn(info.EtcdSize), info.EtcdSHA256)
			fmt.Fprintf(w, "Key-encryption key: %s\n", info.Key)
			return nil
		},
	}
	out = addOutputFlag(cmd)
	return cmd
}

func newSnapshotExtractCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "extract-etcd FILE OUT.db",
		Short: "Write the etcd snapshot in a snapshot file to OUT.db, checked, for etcd's own restore",
		Long: `Write the etcd part of a snapshot file to OUT.db, as "etcdctl snapshot
save" writes one, after checking it against the file's checksum. Restore
an external etcd cluster from it with etcd's tools (etcdutl snapshot
restore OUT.db, on each member), then start the servers with the
key-encryption key (--kek-file or --unlock-key).`,
		Example: `  berth snapshot extract-etcd /backup/state.snapshot state.db
  etcdutl snapshot restore state.db --name m1 --initial-cluster ... --data-dir /var/lib/etcd-restored`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer in.Close()
			r, err := snapshotfile.NewReader(in)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			out, err := snapshotfile.Create(args[1], force)
			if err != nil {
				return err
			}
			defer out.Abort()
			if err := r.CopyEtcd(out); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if err := out.Commit(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Wrote the etcd snapshot of cluster %s (revision %d, %s) to %s.\n", r.Header.ClusterID, r.Header.EtcdRevision, bytesColumn(r.Header.EtcdSize), args[1])
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace OUT.db when it exists")
	return cmd
}

// ReadSnapshotPassphrase returns the passphrase of a snapshot's key: the
// content of file (less its final newline) when given, else
// $BERTH_SNAPSHOT_PASSPHRASE, else what is typed on the terminal, twice
// when confirm. An empty passphrase is refused.
func ReadSnapshotPassphrase(cmd *cobra.Command, file string, confirm bool) ([]byte, error) {
	var p []byte
	switch {
	case file != "":
		raw, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--passphrase-file: %w", err)
		}
		p = bytes.TrimRight(raw, "\r\n")
		if len(p) == 0 {
			return nil, fmt.Errorf("--passphrase-file %s is empty: write the passphrase in it", file)
		}
	case os.Getenv(EnvSnapshotPassphrase) != "":
		p = []byte(os.Getenv(EnvSnapshotPassphrase))
	default:
		fd := terminalFd(cmd.InOrStdin())
		if fd < 0 {
			return nil, usageErrorf("the snapshot's key-encryption key is sealed with a passphrase: give it with --passphrase-file or $%s (standard input is not a terminal to ask it on)", EnvSnapshotPassphrase)
		}
		var err error
		if p, err = prompt(cmd, fd, "Snapshot passphrase: "); err != nil {
			return nil, err
		}
		if len(p) == 0 {
			return nil, errors.New("the passphrase is empty: type one, or give it with --passphrase-file")
		}
		if confirm {
			again, err := prompt(cmd, fd, "Again: ")
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(p, again) {
				return nil, errors.New("the two passphrases differ; nothing was saved")
			}
		}
	}
	return p, nil
}

// prompt reads a line from the terminal fd with echo off.
func prompt(cmd *cobra.Command, fd int, text string) ([]byte, error) {
	fmt.Fprint(cmd.ErrOrStderr(), text)
	defer fmt.Fprintln(cmd.ErrOrStderr())
	p, err := term.ReadPassword(fd)
	if err != nil {
		return nil, fmt.Errorf("reading the passphrase: %w", err)
	}
	return p, nil
}
