package etcd

import (
	"fmt"

	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"
)

// SnapshotStatus is what an etcd snapshot file holds.
type SnapshotStatus struct {
	// Revision is etcd's revision in the snapshot.
	Revision int64
	// Keys is how many keys it holds.
	Keys int
	// StorageVersion is etcd's storage version (3.6.0); empty for
	// snapshots of etcd before 3.6.
	StorageVersion string
}

// StatSnapshot checks the etcd snapshot file at path (bolt's own integrity
// check) and says what it holds.
func StatSnapshot(path string) (SnapshotStatus, error) {
	st, err := snapshot.NewV3(zap.NewNop()).Status(path)
	if err != nil {
		return SnapshotStatus{}, fmt.Errorf("reading the etcd snapshot %s: %w", path, err)
	}
	return SnapshotStatus{Revision: st.Revision, Keys: st.TotalKey, StorageVersion: st.Version}, nil
}

// RestoreEmbedded makes dataDir the data directory of an embedded member
// (StartEmbedded's EmbeddedConfig.DataDir) holding the etcd snapshot file
// at path, with etcd's own restore: it checks the snapshot's checksum and
// rewrites the membership, so the member starts a new one-member cluster
// with the snapshot's keys. dataDir must not exist or be empty.
func RestoreEmbedded(path, dataDir string) error {
	name := "berth"
	err := snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{
		SnapshotPath:  path,
		Name:          name,
		OutputDataDir: dataDir,
		// As StartEmbedded configures the member: its identity derives
		// from these.
		PeerURLs:            []string{advertised.String()},
		InitialCluster:      name + "=" + advertised.String(),
		InitialClusterToken: "etcd-cluster",
	})
	if err != nil {
		return fmt.Errorf("restoring the etcd snapshot into %s: %w", dataDir, err)
	}
	return nil
}
