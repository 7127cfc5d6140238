//go:build linux

package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/berthproject/berth/api/snapshotfile"
	"github.com/berthproject/berth/cli"
	"github.com/berthproject/berth/controlplane/etcd"
	"github.com/berthproject/berth/controlplane/seal"
	"github.com/spf13/cobra"
)

func newSnapshotRestoreCommand() *cobra.Command {
	var dataDir, passphraseFile string
	cmd := &cobra.Command{
		Use:   "restore FILE --data-dir DIR [--passphrase-file F]",
		Short: "Make a server's data dir from a snapshot, to start a new cluster from it",
		Long: `Make DIR the data dir of a server holding the state in the snapshot FILE,
with no server running: the etcd snapshot is checked against the file's
checksum and restored with etcd's own restore, which makes it a new
one-member cluster (the embedded etcd of "berth server"). When the
snapshot carries the key-encryption key, it is opened with the passphrase
(--passphrase-file, else $` + cli.EnvSnapshotPassphrase + `, else asked on the
terminal) and written to DIR/key-encryption-key (mode 0600); otherwise
copy the cluster's key file there, or start the server with --unlock-key.

DIR must not exist or be empty. Then start a server on it at the address
the cluster's server had (its agents' --join address): the cluster keeps
its CA, so the agents reconnect with their certificates and adopt their
running containers.`,
		Example: `  berth snapshot restore /backup/state.snapshot --data-dir /var/lib/berth/server-restored
  berth server --data-dir /var/lib/berth/server-restored --listen 10.0.0.1:4242`,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.ExactArgs(1)(cmd, args); err != nil {
				return err
			}
			if dataDir == "" {
				return errors.New("--data-dir is required: the new data dir of the server to restore into")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return restoreSnapshot(cmd, args[0], dataDir, passphraseFile)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the new server's data dir; it must not exist or be empty")
	cmd.Flags().StringVar(&passphraseFile, "passphrase-file", "", "file holding the passphrase the snapshot's key was sealed with; default $"+cli.EnvSnapshotPassphrase+", else asked on the terminal")
	return cmd
}

func restoreSnapshot(cmd *cobra.Command, path, dataDir, passphraseFile string) (err error) {
	if entries, err := os.ReadDir(dataDir); err == nil && len(entries) > 0 {
		return fmt.Errorf("--data-dir %s is not empty (it holds %s, ...): restore into a new directory, so no server's state is overwritten", dataDir, entries[0].Name())
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("--data-dir: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := snapshotfile.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	h := r.Header
	// The key is opened first: a wrong passphrase changes nothing.
	var kek []byte
	if h.Key != nil {
		passphrase, err := cli.ReadSnapshotPassphrase(cmd, passphraseFile, false)
		if err != nil {
			return err
		}
		if kek, err = h.OpenKey(passphrase); err != nil {
			return fmt.Errorf("%s: %w: give the passphrase the snapshot was saved with", path, err)
		}
		defer clear(kek)
	}

	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	defer func() {
		if err != nil {
			// Leave the directory as empty as it was found.
			entries, _ := os.ReadDir(dataDir)
			for _, e := range entries {
				os.RemoveAll(filepath.Join(dataDir, e.Name()))
			}
		}
	}()
	db, err := os.CreateTemp(dataDir, ".restore-*.db")
	if err != nil {
		return err
	}
	defer func() {
		db.Close()
		os.Remove(db.Name())
	}()
	if err := r.CopyEtcd(db); err != nil {
		return fmt.Errorf("%s: %w; nothing was restored", path, err)
	}
	if err := db.Close(); err != nil {
		return err
	}
	if err := etcd.RestoreEmbedded(db.Name(), filepath.Join(dataDir, "etcd")); err != nil {
		return err
	}
	keyFile := filepath.Join(dataDir, seal.FileName)
	if kek != nil {
		if err := seal.WriteNewFile(keyFile, kek); err != nil {
			return err
		}
	}

	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "Restored cluster %s (etcd revision %d, taken %s by Berth %s) into %s.\n", h.ClusterID, h.EtcdRevision, h.Created.Local().Format(time.RFC3339), h.BerthVersion, dataDir)
	if kek != nil {
		fmt.Fprintf(w, "Its key-encryption key is in %s.\n", keyFile)
	} else {
		fmt.Fprintf(w, "The snapshot carries no key-encryption key: copy the cluster's key file to %s (mode 0600), or start the server with --unlock-key.\n", keyFile)
	}
	addr := "ADDRESS"
	if h.ServerAddress != "" {
		addr = h.ServerAddress
	}
	fmt.Fprintf(w, `Start a server on it at the address the cluster's server had (%s), so its agents reconnect:
  berth server --data-dir %s --listen %s
(or berth dev --data-dir %s).
`, cmp.Or(h.ServerAddress, "the agents' --join address"), dataDir, addr, dataDir)
	return nil
}
