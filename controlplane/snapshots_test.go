package controlplane

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSnapshotConfigRefused(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  SnapshotConfig
		want string
	}{
		{"negative interval", SnapshotConfig{Interval: -time.Hour}, "cannot be negative"},
		{"negative keep", SnapshotConfig{Interval: time.Hour, Keep: -1}, "cannot be negative"},
		{"passphrase without interval", SnapshotConfig{PassphraseFile: empty}, "give --snapshot-interval too"},
		{"empty passphrase", SnapshotConfig{Interval: time.Hour, PassphraseFile: empty}, "is empty"},
		{"missing passphrase file", SnapshotConfig{Interval: time.Hour, PassphraseFile: filepath.Join(dir, "missing")}, "--snapshot-passphrase-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// What the configuration alone tells is refused by Validate,
			// what needs the passphrase file by startSnapshots.
			s := &Server{cfg: Config{DataDir: dir, Snapshots: tt.cfg}.withDefaults(), log: slog.New(slog.DiscardHandler)}
			err := s.cfg.Validate()
			if err == nil {
				err = s.startSnapshots(nil)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate or startSnapshots: %v, want an error saying %q", err, tt.want)
			}
			if s.snapshots != nil || s.periodic != nil {
				t.Error("a refused configuration made a snapshot taker")
			}
		})
	}
}
