package registry

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/seal"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Config holds what Credentials needs.
type Config struct {
	Store *store.Store
	// Key seals the secrets: the cluster's key-encryption key.
	Key *seal.Key
	// Settings returns the cluster settings (for insecure_registries);
	// store.Cache.Settings.
	Settings func() *berthv1.ClusterSettings
	Log      *slog.Logger
}

// Credentials is the cluster's registry credentials, followed by a
// store.Mirror of store.RegistriesPrefix so that lookups (one per image of
// each assignment batch) never read etcd. Run keeps it current; every
// server runs one, since every server dispatches.
type Credentials struct {
	cfg    Config
	log    *slog.Logger
	mirror *store.Mirror[*berthv1.RegistryCredential]
}

// New returns an empty set; Run fills it.
func New(cfg Config) *Credentials {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Settings == nil {
		cfg.Settings = func() *berthv1.ClusterSettings { return &berthv1.ClusterSettings{} }
	}
	// Names in the mirror are the keys past the prefix: the registries.
	m := store.NewMirror(cfg.Store, store.RegistriesPrefix, func() *berthv1.RegistryCredential { return &berthv1.RegistryCredential{} }, nil, cfg.Log)
	return &Credentials{cfg: cfg, log: cfg.Log, mirror: m}
}

// Synced is closed once the credentials were first read.
func (c *Credentials) Synced() <-chan struct{} { return c.mirror.Synced() }

// Run reads the credentials and follows their changes until ctx ends.
func (c *Credentials) Run(ctx context.Context) error {
	err := c.mirror.Run(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Put stores (or replaces) the credential of registry, which must be
// normalized (Normalize), with the password sealed.
func (c *Credentials) Put(ctx context.Context, registry, username, password string) error {
	sealed, err := Seal(c.cfg.Key, registry, password)
	if err != nil {
		return err
	}
	now := timestamppb.Now()
	cred := &berthv1.RegistryCredential{
		Meta:         &berthv1.Meta{Id: store.NewID(), CreatedAt: now, UpdatedAt: now},
		Registry:     registry,
		Username:     username,
		SealedSecret: sealed,
	}
	if cur, ok := c.get(registry); ok && cur.GetMeta() != nil {
		cred.Meta.Id, cred.Meta.CreatedAt = cur.Meta.Id, cur.Meta.CreatedAt
	}
	// Unguarded: the last login wins, as with any credential store.
	var txn store.Txn
	txn.Put(store.RegistryKey(registry), cred)
	rev, err := c.cfg.Store.Commit(ctx, &txn)
	if err != nil {
		return fmt.Errorf("storing the credential of %s: %w", registry, err)
	}
	// Seen by the lookups that follow the login on this server.
	return c.mirror.WaitRevision(ctx, rev)
}

// Delete removes the credential of registry (normalized), reporting
// whether there was one.
func (c *Credentials) Delete(ctx context.Context, registry string) (bool, error) {
	deleted, rev, err := c.cfg.Store.Delete(ctx, store.RegistryKey(registry))
	if err != nil {
		return false, fmt.Errorf("removing the credential of %s: %w", registry, err)
	}
	if !deleted {
		return false, nil
	}
	return true, c.mirror.WaitRevision(ctx, rev)
}

// List returns the stored credentials by registry, secrets left out.
func (c *Credentials) List() []*berthv1.RegistryCredential {
	creds := c.mirror.List()
	out := make([]*berthv1.RegistryCredential, 0, len(creds))
	for _, cr := range creds {
		cp := proto.Clone(cr).(*berthv1.RegistryCredential)
		cp.SealedSecret = nil
		out = append(out, cp)
	}
	slices.SortFunc(out, func(a, b *berthv1.RegistryCredential) int { return strings.Compare(a.Registry, b.Registry) })
	return out
}

func (c *Credentials) get(registry string) (*berthv1.RegistryCredential, bool) {
	return c.mirror.Get(registry)
}

// Lookup returns the username and the unsealed password stored for
// registry (normalized); ok is false when none is stored.
func (c *Credentials) Lookup(registry string) (username, secret string, ok bool, err error) {
	cr, ok := c.get(registry)
	if !ok {
		return "", "", false, nil
	}
	secret, err = Unseal(c.cfg.Key, registry, cr.SealedSecret)
	if err != nil {
		return "", "", true, err
	}
	return cr.Username, secret, true, nil
}

// Insecure reports whether registry (normalized) is reached over plain
// HTTP, by the cluster settings' insecure_registries.
func (c *Credentials) Insecure(registry string) bool {
	for _, r := range c.cfg.Settings().GetInsecureRegistries() {
		if n, err := Normalize(r); err == nil && n == registry {
			return true
		}
	}
	return false
}

// syncWait bounds how long ImageAuth waits for the first read of the
// credentials, right after the server started.
const syncWait = 5 * time.Second

// ImageAuth returns how an agent authenticates to the registry of image:
// the stored credential, unsealed, and whether the registry is insecure.
// It returns nil when the registry has neither a credential nor the
// insecure setting, so an assignment carries nothing it does not need.
// It is the dispatcher's Config.ImageAuth.
func (c *Credentials) ImageAuth(image string) *berthv1.ImageSource {
	host, err := HostOf(image)
	if err != nil {
		return nil
	}
	select {
	case <-c.Synced():
	case <-time.After(syncWait):
		c.log.Warn("registry credentials not read yet; sending the image without them", "image", image)
	}
	src := &berthv1.ImageSource{Image: image, Insecure: c.Insecure(host)}
	user, secret, ok, err := c.Lookup(host)
	if err != nil {
		// The agent's pull then fails with the registry's own refusal,
		// which names the registry; the log says why.
		c.log.Error("registry credential unusable", "registry", host, "err", err)
	} else if ok {
		src.Username, src.Secret = user, secret
	}
	if src.Username == "" && !src.Insecure {
		return nil
	}
	return src
}
