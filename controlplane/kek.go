package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/seal"
	"github.com/berthproject/berth/controlplane/store"
)

// EnvUnlockKey is the environment variable that gives a server the
// cluster's key-encryption key, like --unlock-key.
const EnvUnlockKey = "BERTH_UNLOCK_KEY"

// kekSource says where a server's key-encryption key comes from: the
// unlock key it was given, or else its key file.
type kekSource struct {
	// file is the key file's path (Config.KEKFile, or the default in the
	// data dir).
	file string
	// unlock is the key given with --unlock-key, base64; when set the
	// file is not read nor written.
	unlock string
}

func (c Config) kekSource() kekSource {
	file := c.KEKFile
	if file == "" {
		file = filepath.Join(c.DataDir, seal.FileName)
	}
	return kekSource{file: file, unlock: c.UnlockKey}
}

// openKEK returns the cluster's key-encryption key. On a cluster that has
// a key check (store.KeyCheckKey), the server's key must open it: a server
// with another key, or none, refuses to start and says where to get the
// right one. On a cluster without one (new, or made before the
// key-encryption key), the server's key becomes the cluster's: the unlock
// key given, or the key file, made now when missing.
func openKEK(ctx context.Context, st *store.Store, src kekSource, log *slog.Logger) (*seal.Key, error) {
	check := &berthv1.KeyCheck{}
	err := st.GetMessage(ctx, store.KeyCheckKey, check)
	exists := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("reading the cluster's key check: %w", err)
	}
	raw, created, err := src.read(exists, log)
	if err != nil {
		return nil, err
	}
	key, err := seal.New(raw)
	if err != nil {
		return nil, err
	}
	if !exists {
		fresh, err := key.NewKeyCheck()
		if err != nil {
			return nil, err
		}
		var txn store.Txn
		txn.Create(store.KeyCheckKey, fresh)
		_, err = st.Commit(ctx, &txn)
		switch {
		case err == nil:
			log.Info("the cluster's secrets are sealed with this server's key-encryption key", "key", src.where())
			return key, nil
		case !errors.Is(err, store.ErrConflict):
			return nil, fmt.Errorf("storing the cluster's key check: %w", err)
		}
		// Another server made the cluster's key check first.
		if err := st.GetMessage(ctx, store.KeyCheckKey, check); err != nil {
			return nil, fmt.Errorf("reading the cluster's key check: %w", err)
		}
	}
	if err := key.Check(check); err != nil {
		if created {
			// Made a moment ago for a cluster another server made at
			// the same time: it is no key of this cluster.
			os.Remove(src.file)
		}
		return nil, src.mismatch()
	}
	return key, nil
}

// read returns the key of src. A missing key file is made (created true)
// only when the cluster has no key check yet (clusterHasKey false).
func (src kekSource) read(clusterHasKey bool, log *slog.Logger) (raw []byte, created bool, err error) {
	if src.unlock != "" {
		raw, err := seal.ParseText(src.unlock)
		if err != nil {
			return nil, false, fmt.Errorf("--unlock-key (or $%s): %w", EnvUnlockKey, err)
		}
		return raw, false, nil
	}
	raw, err = seal.ReadFile(src.file)
	switch {
	case err == nil:
		if seal.LooseMode(src.file) {
			log.Warn("the key-encryption key file can be read by other users; make it readable by its owner only (chmod 600)", "file", src.file)
		}
		return raw, false, nil
	case !seal.IsNotExist(err):
		return nil, false, err
	case clusterHasKey:
		return nil, false, fmt.Errorf("this cluster's secrets are sealed with a key-encryption key, and %s does not exist: copy the key file of the server that made the cluster (its <data-dir>/%s) to %s with mode 0600, or pass the key with --unlock-key (or $%s; berth server key on that server prints it)", src.file, seal.FileName, src.file, EnvUnlockKey)
	}
	if raw, err = seal.Generate(); err != nil {
		return nil, false, err
	}
	if err := seal.WriteNewFile(src.file, raw); err != nil {
		return nil, false, err
	}
	log.Info("made the cluster's key-encryption key; back it up (berth server key prints it) and give it to every other server of the cluster", "file", src.file)
	return raw, true, nil
}

// where names the key for messages.
func (src kekSource) where() string {
	if src.unlock != "" {
		return "the unlock key"
	}
	return src.file
}

// mismatch is the error of a key that does not open the cluster's key
// check.
func (src kekSource) mismatch() error {
	if src.unlock != "" {
		return fmt.Errorf("the unlock key given (--unlock-key or $%s) is not this cluster's key-encryption key: give the key the cluster was made with (berth server key on a server of the cluster prints it)", EnvUnlockKey)
	}
	return fmt.Errorf("the key-encryption key in %s is not this cluster's (it is another cluster's, or was replaced): copy the key file of the server that made the cluster (its <data-dir>/%s) over %s, or pass the cluster's key with --unlock-key (or $%s)", src.file, seal.FileName, src.file, EnvUnlockKey)
}
