package controlplane

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/berthproject/berth/api/access"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// errCredentialEnded is the cause of a stream context ended because its
// token or certificate was revoked or expired.
var errCredentialEnded = errors.New("credential ended")

// openStreams holds the contexts of the open streams (Watch, Logs -f,
// Exec, WatchEvents) by the API token and the certificate serial they
// were opened with, so that revoking either ends them at once rather than
// whenever the client hangs up. It is fed by mirrors of the API tokens and
// of the revoked certificates.
type openStreams struct {
	mu       sync.Mutex
	byToken  map[string]map[*openStream]struct{}
	bySerial map[string]map[*openStream]struct{}
}

type openStream struct {
	cancel context.CancelCauseFunc
}

func newOpenStreams() *openStreams {
	return &openStreams{byToken: map[string]map[*openStream]struct{}{}, bySerial: map[string]map[*openStream]struct{}{}}
}

// open registers a stream of p and returns its context, which ends with
// errCredentialEnded as its cause when p's token or certificate is revoked
// or expires (at expires, when not zero). done unregisters it.
func (o *openStreams) open(ctx context.Context, p access.Principal, expires time.Time) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	var stopTimer func() bool
	if !expires.IsZero() {
		t := time.AfterFunc(time.Until(expires), func() {
			cancel(fmt.Errorf("%w: the credential of %s expired at %s", errCredentialEnded, p, expires.UTC().Format(time.RFC3339)))
		})
		stopTimer = t.Stop
	}
	s := &openStream{cancel: cancel}
	o.mu.Lock()
	add(o.byToken, p.TokenID, s)
	add(o.bySerial, p.Serial, s)
	o.mu.Unlock()
	return ctx, func() {
		o.mu.Lock()
		remove(o.byToken, p.TokenID, s)
		remove(o.bySerial, p.Serial, s)
		o.mu.Unlock()
		if stopTimer != nil {
			stopTimer()
		}
		cancel(context.Canceled)
	}
}

func add(m map[string]map[*openStream]struct{}, key string, s *openStream) {
	if key == "" {
		return
	}
	if m[key] == nil {
		m[key] = map[*openStream]struct{}{}
	}
	m[key][s] = struct{}{}
}

func remove(m map[string]map[*openStream]struct{}, key string, s *openStream) {
	if key == "" {
		return
	}
	delete(m[key], s)
	if len(m[key]) == 0 {
		delete(m, key)
	}
}

// end cancels the streams under key of m with why.
func (o *openStreams) end(m map[string]map[*openStream]struct{}, key string, why error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for s := range m[key] {
		s.cancel(why)
	}
}

// tokenChanged follows the API token mirror: a token deleted or expired
// ends its streams.
func (o *openStreams) tokenChanged(id string, t *berthv1.APIToken, deleted bool) {
	switch {
	case deleted:
		o.end(o.byToken, id, fmt.Errorf("%w: API token %q was revoked", errCredentialEnded, t.GetName()))
	case t.GetExpiresAt() != nil && !time.Now().Before(t.GetExpiresAt().AsTime()):
		o.end(o.byToken, id, fmt.Errorf("%w: API token %q expired", errCredentialEnded, t.GetName()))
	}
}

// certificateRevoked follows the revoked certificates' mirror: a serial
// revoked ends the streams opened with that certificate.
func (o *openStreams) certificateRevoked(serial string, r *berthv1.RevokedCertificate, deleted bool) {
	if deleted {
		// The entry went because the certificate expired: nothing is open.
		return
	}
	o.end(o.bySerial, serial, fmt.Errorf("%w: the certificate of %s was revoked", errCredentialEnded, r.GetSubject()))
}

// count is how many streams are open, for tests.
func (o *openStreams) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, set := range o.byToken {
		n += len(set)
	}
	for _, set := range o.bySerial {
		n += len(set)
	}
	return n
}
