package controlplane

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/clientconfig"
	"github.com/berthproject/berth/api/identity"
	"github.com/berthproject/berth/controlplane/ca"
	"github.com/berthproject/berth/controlplane/store"
)

// serverCerts keeps the server's certificates: the deny-list every
// handshake checks, the serving certificate renewed in place at two
// thirds of its lifetime, and, when the cluster CA rotates (on any
// server), a certificate of the new CA, a new admin config and the new
// trust bundle for the connected nodes.
type serverCerts struct {
	authority *ca.Authority
	// creds is the server's certificate, key and trust bundle in use; the
	// listeners and the clients to nodes read it at each handshake.
	creds *identity.Live
	hosts []string
	// revoked mirrors the deny-list.
	revoked *store.Mirror[*berthv1.RevokedCertificate]
	// stored mirrors the cluster CA record, which a rotation changes.
	stored *store.Mirror[*berthv1.ClusterCA]
	// caChanged is signalled when the stored CA changes.
	caChanged chan struct{}
	// admin writes the admin config for the CA in use; trustChanged tells
	// the connected nodes. Both are set before run.
	admin        func() error
	trustChanged func()
	log          *slog.Logger
	// retryAt, when set, is when a failed renewal is tried again.
	retryAt time.Time
}

// newServerCerts issues the server's certificate; onRevoked, when not nil,
// hears of each certificate put on the deny-list (to end its streams).
func newServerCerts(st *store.Store, a *ca.Authority, hosts []string, onRevoked func(string, *berthv1.RevokedCertificate, bool), log *slog.Logger) (*serverCerts, error) {
	c := &serverCerts{authority: a, hosts: hosts, log: log, caChanged: make(chan struct{}, 1)}
	certPEM, keyPEM, err := a.IssueServer(hosts)
	if err != nil {
		return nil, err
	}
	if c.creds, err = identity.NewLive(certPEM, keyPEM, a.TrustBundle()); err != nil {
		return nil, err
	}
	c.revoked = store.NewMirror(st, store.RevokedPrefix, func() *berthv1.RevokedCertificate { return &berthv1.RevokedCertificate{} }, onRevoked, log)
	c.stored = store.NewMirror(st, store.CAKey, func() *berthv1.ClusterCA { return &berthv1.ClusterCA{} },
		func(string, *berthv1.ClusterCA, bool) {
			select {
			case c.caChanged <- struct{}{}:
			default:
			}
		}, log)
	return c, nil
}

// isRevoked is the deny-list check of every handshake.
func (c *serverCerts) isRevoked(serial string) bool {
	_, ok := c.revoked.Get(serial)
	return ok
}

// synced is closed once the deny-list is loaded: the listeners serve
// only then, so a revoked certificate never slips in at start.
func (c *serverCerts) synced() <-chan struct{} { return c.revoked.Synced() }

// run follows the deny-list and the stored CA, and renews the server's
// certificate, until ctx ends.
func (c *serverCerts) run(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- c.revoked.Run(ctx) }()
	go func() { errc <- c.stored.Run(ctx) }()
	defer func() { <-errc; <-errc }()
	acted := c.authority.TrustBundle()
	for {
		wait := c.renewIn()
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-c.caChanged:
			timer.Stop()
			if rec, ok := c.stored.Get(""); ok {
				if _, err := c.authority.Reload(rec); err != nil {
					c.log.Error("the stored cluster CA changed and cannot be opened; keeping the one in use", "err", err)
					continue
				}
			}
			// Also when this server made the change (Reload has nothing
			// to do then): it renews and tells its nodes like the others.
			if bundle := c.authority.TrustBundle(); !bytes.Equal(bundle, acted) {
				acted = bundle
				c.log.Info("the cluster CA changed", "ca", c.authority.Digest(), "rolling", c.authority.Rolling())
				c.renew()
				if err := c.admin(); err != nil {
					c.log.Warn("writing the admin config for the new CA", "err", err)
				}
				c.trustChanged()
			}
		case <-timer.C:
			c.renew()
		}
	}
}

// renewIn is the wait until the server's certificate is due: two thirds
// into its lifetime, or at once when another CA than the current signed
// it.
func (c *serverCerts) renewIn() time.Duration {
	if !c.retryAt.IsZero() {
		return max(0, time.Until(c.retryAt))
	}
	leaf := c.creds.Leaf()
	if c.authority.IssuerDigest(leaf) != c.authority.Digest() {
		return 0
	}
	return max(0, identity.RenewIn(leaf, time.Now()))
}

// renew issues the server a new certificate from the CA it holds and puts
// it in use; listeners keep serving, and new connections get it.
func (c *serverCerts) renew() {
	certPEM, keyPEM, err := c.authority.IssueServer(c.hosts)
	if err == nil {
		err = c.creds.Update(certPEM, keyPEM, c.authority.TrustBundle())
	}
	if err != nil {
		// The certificate in use stays; the next try is a minute away at
		// most, not a busy loop.
		c.retryAt = time.Now().Add(min(time.Minute, max(time.Second, time.Until(c.creds.Leaf().NotAfter)/10)))
		c.log.Error("renewing the server certificate", "err", err, "retry at", c.retryAt)
		return
	}
	c.retryAt = time.Time{}
	c.log.Info("renewed the server certificate", "serial", identity.SerialHex(c.creds.Leaf()), "expires", c.creds.Leaf().NotAfter)
}

// adminConfig is a client config with a fresh admin certificate of the
// current CA, trusting the whole bundle.
func adminConfig(a *ca.Authority, server string) (*clientconfig.Config, error) {
	cert, key, err := a.IssueAdmin()
	if err != nil {
		return nil, err
	}
	return &clientconfig.Config{Server: server, CA: string(a.TrustBundle()), Certificate: string(cert), Key: string(key)}, nil
}

// pruneRevoked deletes the deny-list entries of certificates that have
// expired: no handshake accepts them anyway. The leader runs it now and
// then.
func pruneRevoked(ctx context.Context, st *store.Store, entries []*berthv1.RevokedCertificate, now time.Time) (int, error) {
	var txn store.Txn
	for _, e := range entries {
		if e.GetExpiresAt() != nil && now.After(e.GetExpiresAt().AsTime()) {
			txn.Delete(store.RevokedKey(e.GetSerial()), 0)
		}
		if txn.Len() == store.MaxTxnOps {
			break // the rest next time
		}
	}
	if txn.Len() == 0 {
		return 0, nil
	}
	if _, err := st.Commit(ctx, &txn); err != nil {
		return 0, fmt.Errorf("pruning the certificate deny-list: %w", err)
	}
	return txn.Len(), nil
}

// pruneRevokedPeriod is how often the leader prunes the deny-list.
const pruneRevokedPeriod = time.Hour

// pruneLoop prunes the deny-list while this server leads.
func (c *serverCerts) pruneLoop(st *store.Store) func(context.Context) error {
	return func(ctx context.Context) error {
		t := time.NewTicker(pruneRevokedPeriod)
		defer t.Stop()
		for {
			if n, err := pruneRevoked(ctx, st, c.revoked.List(), time.Now()); err != nil && ctx.Err() == nil {
				c.log.Warn("pruning the certificate deny-list", "err", err)
			} else if n > 0 {
				c.log.Info("pruned expired certificates from the deny-list", "entries", n)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	}
}
