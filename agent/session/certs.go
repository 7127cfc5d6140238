package session

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
)

// renewRetry bounds the wait before a refused or lost renewal is asked
// again; a certificate with little time left is retried sooner.
const renewRetry = time.Minute

// certs keeps the node's certificate fresh over the session: it asks for a
// new one at two thirds of its lifetime, or when the control plane says the
// CA that signed it is being retired, and installs what comes back in
// memory (for new connections and the node's own listeners) and in the
// data dir (for the next start). Only the session's goroutine uses it.
type certs struct {
	live   *identity.Live
	dir    string
	nodeID string
	log    *slog.Logger
	// pendingKey is the key of the request in flight, nil when none is.
	pendingKey []byte
	// retryAt, when set, is when to ask again after a failed renewal.
	retryAt time.Time
}

// due is how long from now the next renewal request is; zero or less is
// now.
func (c *certs) due(now time.Time) time.Duration {
	if !c.retryAt.IsZero() {
		return c.retryAt.Sub(now)
	}
	return identity.RenewIn(c.live.Leaf(), now)
}

// request makes a new key and the request to send, unless one is in
// flight.
func (c *certs) request() (*berthv1.AgentMessage, error) {
	if c.pendingKey != nil {
		return nil, nil
	}
	keyPEM, csrPEM, err := identity.NewKeyAndCSR(c.nodeID)
	if err != nil {
		return nil, err
	}
	c.pendingKey = keyPEM
	c.log.Info("renewing the node certificate", "expires", c.live.Leaf().NotAfter)
	return &berthv1.AgentMessage{Message: &berthv1.AgentMessage_RenewCertificate{
		RenewCertificate: &berthv1.CertificateRenewalRequest{Csr: csrPEM},
	}}, nil
}

// lost forgets a request whose session ended before the answer: the next
// session asks again.
func (c *certs) lost() { c.pendingKey = nil }

// renewed installs the answer to the request in flight.
func (c *certs) renewed(r *berthv1.CertificateRenewal, now time.Time) error {
	key := c.pendingKey
	c.pendingKey = nil
	if r.GetError() != "" || key == nil {
		c.retryAt = now.Add(c.retryIn(now))
		if key == nil {
			return errors.New("the control plane sent a certificate this node did not ask for; ignored")
		}
		return fmt.Errorf("the control plane refused to renew the node certificate: %s", r.GetError())
	}
	if err := c.install(r.GetCertificate(), key, r.GetTrustBundle()); err != nil {
		c.retryAt = now.Add(c.retryIn(now))
		return err
	}
	c.retryAt = time.Time{}
	c.log.Info("renewed the node certificate", "serial", identity.SerialHex(c.live.Leaf()), "expires", c.live.Leaf().NotAfter)
	return nil
}

// retryIn is the wait before asking again: a tenth of what is left of
// the certificate, at most renewRetry.
func (c *certs) retryIn(now time.Time) time.Duration {
	return max(time.Second, min(renewRetry, c.live.Leaf().NotAfter.Sub(now)/10))
}

// trust takes the control plane's trust bundle; it reports whether the
// node should renew at once.
func (c *certs) trust(t *berthv1.TrustUpdate) (renew bool, err error) {
	if t == nil || len(t.GetTrustBundle()) == 0 {
		return false, nil
	}
	certPEM, keyPEM, caPEM := c.live.PEM()
	if string(caPEM) != string(t.GetTrustBundle()) {
		if err := c.install(certPEM, keyPEM, t.GetTrustBundle()); err != nil {
			return false, err
		}
		c.log.Info("the cluster's CA trust bundle changed", "renew", t.GetRenew())
	}
	return t.GetRenew(), nil
}

// install checks a certificate, key and bundle and puts them in use and
// in the data dir.
func (c *certs) install(certPEM, keyPEM, caPEM []byte) error {
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return errors.New("the renewed node certificate is not PEM")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("the renewed node certificate: %w", err)
	}
	if who, err := identity.FromCertificate(leaf); err != nil || who.Role != identity.RoleNode || who.ID != c.nodeID {
		return fmt.Errorf("the renewed certificate names %v, not node %s; ignored", who, c.nodeID)
	}
	next := &identity.Live{}
	if err := next.Update(certPEM, keyPEM, caPEM); err != nil {
		return err
	}
	if err := saveRenewed(c.dir, &Credentials{NodeID: c.nodeID, Cert: certPEM, Key: keyPEM, CA: caPEM}); err != nil {
		return err
	}
	return c.live.Update(certPEM, keyPEM, caPEM)
}

// saveRenewed replaces the credentials in dir so that a crash at any point
// leaves a certificate and key that belong together: the new certificate
// is written aside, the key replaced, then the certificate; load finishes
// a replacement cut short between the two.
func saveRenewed(dir string, c *Credentials) error {
	if err := writeAtomic(filepath.Join(dir, caFile), c.CA); err != nil {
		return err
	}
	next := filepath.Join(dir, certFile+".next")
	if err := writeAtomic(next, c.Cert); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, keyFile), c.Key); err != nil {
		return err
	}
	if err := os.Rename(next, filepath.Join(dir, certFile)); err != nil {
		return fmt.Errorf("saving the renewed node certificate: %w", err)
	}
	return syncDir(dir)
}

// finishRenewal completes a saveRenewed cut short after the key was
// replaced: when the key fits the certificate written aside, that one is
// put in place.
func finishRenewal(dir string, c *Credentials) error {
	next := filepath.Join(dir, certFile+".next")
	pending, err := os.ReadFile(next)
	if err != nil {
		return nil
	}
	if _, err := tls.X509KeyPair(c.Cert, c.Key); err == nil {
		return os.Remove(next) // cut short before the key was replaced
	}
	if _, err := tls.X509KeyPair(pending, c.Key); err != nil {
		return nil // leave it; load reports the mismatch
	}
	if err := os.Rename(next, filepath.Join(dir, certFile)); err != nil {
		return err
	}
	c.Cert = pending
	return nil
}

// writeAtomic writes data to path through a synced temporary file and a
// rename, so path holds the old data or the new, never a part.
func writeAtomic(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("saving node credentials: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("saving node credentials: %w", err)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
