package controlplane

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/berthproject/berth/controlplane/seal"
	"github.com/berthproject/berth/controlplane/snapshot"
)

// SnapshotConfig says whether and how the leader writes periodic
// snapshots of the cluster into <DataDir>/snapshots.
type SnapshotConfig struct {
	// Interval between snapshots; 0 writes none.
	Interval time.Duration
	// Keep is how many of the newest stay; 0 is snapshot.DefaultKeep.
	Keep int
	// PassphraseFile, when set, is a file whose content (less a final
	// newline) seals the key-encryption key into each snapshot; without
	// it the snapshots carry no key, and a restore needs the key file.
	PassphraseFile string
}

// startSnapshots makes the server's snapshot taker (for the API) and its
// periodic snapshots (run while it leads).
func (s *Server) startSnapshots(kek *seal.Key) error {
	c := s.cfg.Snapshots
	var passphrase []byte
	if c.PassphraseFile != "" {
		raw, err := os.ReadFile(c.PassphraseFile)
		if err != nil {
			return fmt.Errorf("--snapshot-passphrase-file: %w", err)
		}
		passphrase = bytes.TrimRight(raw, "\r\n")
		if len(passphrase) == 0 {
			return fmt.Errorf("--snapshot-passphrase-file %s is empty: write the passphrase in it, or drop the flag to take snapshots without the key", c.PassphraseFile)
		}
		if seal.LooseMode(c.PassphraseFile) {
			s.log.Warn("the snapshot passphrase file can be read by other users; make it readable by its owner only (chmod 600)", "file", c.PassphraseFile)
		}
	}
	dir := filepath.Join(s.cfg.DataDir, snapshot.DirName)
	snapshot.RemoveLeftovers(s.cfg.DataDir, dir)
	s.snapshots = snapshot.New(snapshot.Config{
		Store: s.store, ClusterID: s.authority.ClusterID, KEK: kek, TempDir: s.cfg.DataDir,
		Address: s.advertised, Log: s.log.With("component", "snapshots"),
	})
	s.periodic = snapshot.NewPeriodic(s.snapshots, snapshot.Schedule{
		Interval: c.Interval, Keep: c.Keep, Passphrase: passphrase,
		Dir: dir,
	}, s.log.With("component", "snapshots"))
	return nil
}

// advertised is the address in the admin config: the advertised one.
func (s *Server) advertised() string {
	if c := s.admin.Load(); c != nil {
		return c.Server
	}
	return ""
}

// periodicSnapshots runs the periodic snapshots while this server leads.
func (s *Server) periodicSnapshots(ctx context.Context) error { return s.periodic.Run(ctx) }
