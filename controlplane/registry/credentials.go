package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/seal"
	"github.com/berthproject/berth/controlplane/store"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
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

// Credentials is the cluster's registry credentials, read from an etcd
// watch on store.RegistriesPrefix so that lookups (one per image of each
// assignment batch) never read etcd. Run keeps it current; every server
// runs one, since every server dispatches.
type Credentials struct {
	cfg Config
	log *slog.Logger

	mu      sync.RWMutex
	creds   map[string]*berthv1.RegistryCredential
	rev     int64
	advance chan struct{} // closed and replaced when rev moves
	synced  chan struct{}
	once    sync.Once
}

// New returns an empty set; Run fills it.
func New(cfg Config) *Credentials {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Settings == nil {
		cfg.Settings = func() *berthv1.ClusterSettings { return &berthv1.ClusterSettings{} }
	}
	return &Credentials{
		cfg:     cfg,
		log:     cfg.Log,
		creds:   map[string]*berthv1.RegistryCredential{},
		advance: make(chan struct{}),
		synced:  make(chan struct{}),
	}
}

// Synced is closed once the credentials were first read.
func (c *Credentials) Synced() <-chan struct{} { return c.synced }

// retryDelay is how long Run waits before it reads again after the watch
// failed (etcd unreachable, revision compacted).
const retryDelay = time.Second

// Run reads the credentials and follows their changes until ctx ends.
func (c *Credentials) Run(ctx context.Context) error {
	for {
		rev, err := c.load(ctx)
		if err == nil {
			err = c.watch(ctx, rev)
		}
		if ctx.Err() != nil {
			return nil
		}
		c.log.Warn("registry credentials: reading again after a failed watch", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retryDelay):
		}
	}
}

func (c *Credentials) load(ctx context.Context) (int64, error) {
	list, rev, err := store.List(ctx, c.cfg.Store, store.RegistriesPrefix, func() *berthv1.RegistryCredential { return &berthv1.RegistryCredential{} })
	if err != nil {
		return 0, err
	}
	creds := make(map[string]*berthv1.RegistryCredential, len(list))
	for _, cr := range list {
		creds[cr.Registry] = cr
	}
	c.mu.Lock()
	c.creds = creds
	c.setRev(rev)
	c.mu.Unlock()
	c.once.Do(func() { close(c.synced) })
	return rev, nil
}

func (c *Credentials) watch(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := c.cfg.Store.Client().Watch(wctx, store.RegistriesPrefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	for resp := range wch {
		if err := resp.Err(); err != nil {
			return err
		}
		c.mu.Lock()
		for _, ev := range resp.Events {
			registry := strings.TrimPrefix(string(ev.Kv.Key), store.RegistriesPrefix)
			if ev.Type == mvccpb.DELETE {
				delete(c.creds, registry)
				continue
			}
			cr := &berthv1.RegistryCredential{}
			if err := proto.Unmarshal(ev.Kv.Value, cr); err != nil {
				c.log.Error("skipping an undecodable registry credential", "key", string(ev.Kv.Key), "err", err)
				continue
			}
			if cr.Meta != nil {
				cr.Meta.Version = ev.Kv.ModRevision
			}
			c.creds[registry] = cr
		}
		if n := len(resp.Events); n > 0 {
			c.setRev(resp.Events[n-1].Kv.ModRevision)
		}
		c.mu.Unlock()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.New("watch channel closed")
}

// setRev records that every change up to rev is read; c.mu is held.
func (c *Credentials) setRev(rev int64) {
	if rev > c.rev {
		c.rev = rev
		close(c.advance)
		c.advance = make(chan struct{})
	}
}

// waitRevision returns once the watch has read rev, so that a Login is
// seen by the lookups that follow it on this server.
func (c *Credentials) waitRevision(ctx context.Context, rev int64) error {
	for {
		c.mu.RLock()
		cur, advance := c.rev, c.advance
		c.mu.RUnlock()
		if cur >= rev {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-advance:
		}
	}
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
	return c.waitRevision(ctx, rev)
}

// Delete removes the credential of registry (normalized), reporting
// whether there was one.
func (c *Credentials) Delete(ctx context.Context, registry string) (bool, error) {
	resp, err := c.cfg.Store.Client().Delete(ctx, store.RegistryKey(registry))
	if err != nil {
		return false, fmt.Errorf("removing the credential of %s: %w", registry, err)
	}
	if resp.Deleted == 0 {
		return false, nil
	}
	return true, c.waitRevision(ctx, resp.Header.Revision)
}

// List returns the stored credentials by registry, secrets left out.
func (c *Credentials) List() []*berthv1.RegistryCredential {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*berthv1.RegistryCredential, 0, len(c.creds))
	for _, cr := range c.creds {
		cp := proto.Clone(cr).(*berthv1.RegistryCredential)
		cp.SealedSecret = nil
		out = append(out, cp)
	}
	slices.SortFunc(out, func(a, b *berthv1.RegistryCredential) int { return strings.Compare(a.Registry, b.Registry) })
	return out
}

func (c *Credentials) get(registry string) (*berthv1.RegistryCredential, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	cr, ok := c.creds[registry]
	return cr, ok
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
	case <-c.synced:
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
