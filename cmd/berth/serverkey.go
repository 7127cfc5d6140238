//go:build linux

package main

import (
	"fmt"
	"path/filepath"

	"github.com/berthproject/berth/controlplane/seal"
	"github.com/spf13/cobra"
)

func newServerKeyCommand() *cobra.Command {
	var dataDir, kekFile string
	var generate bool
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Print the cluster's key-encryption key, for a backup or for --unlock-key",
		Long: `Print the key-encryption key of this server (its --kek-file, by default
<data-dir>/key-encryption-key) as base64. The key seals the cluster's
secrets, the CA key and the registry passwords in etcd: without it a
backup of etcd cannot be restored, so keep a copy apart from the backups.

Every server of a cluster needs the key: copy the file to the others, or
start them with --unlock-key KEY (or $BERTH_UNLOCK_KEY), which keeps it off
their disks. With --generate, print a new random key instead, for a new
cluster whose servers all start with --unlock-key.`,
		Example: `  berth server key > /secure/place/berth-kek
  berth server --unlock-key "$(cat /secure/place/berth-kek)"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var raw []byte
			var err error
			if generate {
				raw, err = seal.Generate()
			} else {
				if kekFile == "" {
					kekFile = filepath.Join(dataDir, seal.FileName)
				}
				raw, err = seal.ReadFile(kekFile)
				if seal.IsNotExist(err) {
					err = fmt.Errorf("%w: this server has no key file; it is made when a server starts a new cluster (give --data-dir or --kek-file of that server)", err)
				}
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), seal.Text(raw))
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", defaultDataDir("server"), "the server's data dir")
	cmd.Flags().StringVar(&kekFile, "kek-file", "", "the key file (default <data-dir>/key-encryption-key)")
	cmd.Flags().BoolVar(&generate, "generate", false, "print a new random key instead")
	return cmd
}
