package audit

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/berthproject/berth/controlplane/store"
)

const (
	// DefaultRetention is how long records are kept when the server is
	// not told otherwise.
	DefaultRetention = 30 * 24 * time.Hour
	// MinRetention is the shortest retention a server accepts: a log
	// that forgets within the hour records nothing anyone can review.
	MinRetention = time.Hour
	// DefaultSweepEvery is how often the sweep runs.
	DefaultSweepEvery = time.Hour
)

// CheckRetention refuses a retention too short to be an audit log.
func CheckRetention(d time.Duration) error {
	if d < MinRetention {
		return fmt.Errorf("audit retention %s is too short: keep records at least %s (--audit-retention, default %s)", d, MinRetention, DefaultRetention)
	}
	return nil
}

// Sweep removes records older than Keep, on the leader only: one server
// sweeping is enough, and the leader's fence stops a deposed one.
type Sweep struct {
	Store *store.Store
	// Keep is how long records are kept; zero is DefaultRetention.
	Keep time.Duration
	// Every is how often it sweeps; zero is DefaultSweepEvery.
	Every time.Duration
	Log   *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Run sweeps now, then every Every, until ctx ends. A sweep that fails is
// logged and tried again at the next.
func (s *Sweep) Run(ctx context.Context) error {
	log := cmp.Or(s.Log, slog.Default())
	t := time.NewTicker(cmp.Or(s.Every, DefaultSweepEvery))
	defer t.Stop()
	for {
		if n, err := s.Once(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("removing old audit records; trying again later", "err", err)
		} else if n > 0 {
			log.Info("removed old audit records", "records", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Once removes the records older than Keep and returns how many went.
func (s *Sweep) Once(ctx context.Context) (int64, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	return s.Store.DeleteAuditBefore(ctx, now().Add(-cmp.Or(s.Keep, DefaultRetention)))
}
