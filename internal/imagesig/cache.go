package imagesig

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
)

// DefaultCacheTTL is how long a successful verification is trusted
// without asking the registry again: long enough that the tasks of a
// rollout or a restart do not each pay for it, short enough that a
// signature removed from the registry stops new tasks soon after.
const DefaultCacheTTL = 5 * time.Minute

// defaultCacheSize bounds the entries a Cache keeps.
const defaultCacheSize = 4096

// VerifyFunc is the signature of Verify, for a Cache to call.
type VerifyFunc func(ctx context.Context, repository, digest string, keys []Key, reg Registry) (string, error)

// Cache remembers successful verifications per repository, digest and
// key set, so that starting many tasks of one image verifies it once.
// Failures are not kept: an image signed after a refusal runs at once.
// It is safe for concurrent use.
type Cache struct {
	ttl    time.Duration
	size   int
	verify VerifyFunc
	now    func() time.Time

	mu      sync.Mutex
	entries map[string]cacheEntry
	// flight joins verifications of one key that run at once (the
	// replicas of a new service starting together) into one.
	flight singleflight.Group
	// results counts verifications by result and by whether the registry
	// was asked for this one.
	results *prometheus.CounterVec
	// role labels the metrics (WithRole).
	role string
}

type cacheEntry struct {
	key     string // the name of the key that signed
	expires time.Time
}

// CacheOption changes a Cache.
type CacheOption func(*Cache)

// WithTTL keeps verifications for ttl.
func WithTTL(ttl time.Duration) CacheOption { return func(c *Cache) { c.ttl = ttl } }

// WithVerify verifies with f instead of Verify (tests).
func WithVerify(f VerifyFunc) CacheOption { return func(c *Cache) { c.verify = f } }

// WithClock reads the time from now (tests).
func WithClock(now func() time.Time) CacheOption { return func(c *Cache) { c.now = now } }

// WithSize keeps at most n verifications.
func WithSize(n int) CacheOption { return func(c *Cache) { c.size = n } }

// WithRole labels the cache's metrics with the role that checks ("server"
// or "node"), so that a server and an agent in one process (berth dev)
// each count their own.
func WithRole(role string) CacheOption { return func(c *Cache) { c.role = role } }

// NewCache returns an empty cache.
func NewCache(opts ...CacheOption) *Cache {
	c := &Cache{ttl: DefaultCacheTTL, size: defaultCacheSize, verify: Verify, now: time.Now, entries: map[string]cacheEntry{}}
	for _, o := range opts {
		o(c)
	}
	c.results = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "berth_image_verifications_total",
		Help:        "Image signature checks against trust policies: result signed, unsigned (no valid signature by a trusted key) or error (the registry could not tell); cached when no registry was asked for this one.",
		ConstLabels: prometheus.Labels{"role": c.role},
	}, []string{"result", "cached"})
	return c
}

// cacheKey names a verification: the same digest checked against another
// key set, or in another repository (where its signatures live), is
// another verification.
func cacheKey(repository, digest string, keys []Key) string {
	pems := make([]string, len(keys))
	for i, k := range keys {
		pems[i] = k.Name + "\x00" + k.PEM
	}
	slices.Sort(pems)
	h := sha256.New()
	for _, p := range pems {
		h.Write([]byte(p))
		h.Write([]byte{0xff})
	}
	return repository + "@" + digest + "#" + hex.EncodeToString(h.Sum(nil))
}

// Verify is Verify, answered from the cache when a verification of the
// same repository, digest and keys succeeded within the TTL, or joined to
// one of them that is running. cached says whether the answer came from
// another call. A joined call shares the first one's context: when that
// one is cancelled, the others see its error and may try again.
func (c *Cache) Verify(ctx context.Context, repository, digest string, keys []Key, reg Registry) (signer string, cached bool, err error) {
	k := cacheKey(repository, digest, keys)
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[k]
	if ok && now.Before(e.expires) {
		c.mu.Unlock()
		c.count(nil, true)
		return e.key, true, nil
	}
	if ok {
		delete(c.entries, k)
	}
	c.mu.Unlock()

	for {
		signer, shared, err := c.join(ctx, k, now, repository, digest, keys, reg)
		// The call this one joined was cut short by its own caller; this
		// caller still wants an answer.
		if err != nil && shared && ctx.Err() == nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			continue
		}
		c.count(err, shared)
		return signer, shared, err
	}
}

// count records one verification's result.
func (c *Cache) count(err error, cached bool) {
	result := "signed"
	switch {
	case errors.Is(err, ErrUnsigned), errors.Is(err, ErrNoValidSignature):
		result = "unsigned"
	case err != nil:
		result = "error"
	}
	c.results.WithLabelValues(result, strconv.FormatBool(cached)).Inc()
}

// Collector is the cache's verification counter, for a metrics registry.
func (c *Cache) Collector() prometheus.Collector { return c.results }

// join runs the verification of key k, or joins the one running.
func (c *Cache) join(ctx context.Context, k string, now time.Time, repository, digest string, keys []Key, reg Registry) (string, bool, error) {
	v, err, shared := c.flight.Do(k, func() (any, error) {
		signer, err := c.verify(ctx, repository, digest, keys, reg)
		if err != nil {
			return "", err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.entries) >= c.size {
			c.evict(now)
		}
		c.entries[k] = cacheEntry{key: signer, expires: now.Add(c.ttl)}
		return signer, nil
	})
	if err != nil {
		return "", shared, err
	}
	return v.(string), shared, nil
}

// evict drops expired entries, and the one that expires first when none
// has. Called with mu held.
func (c *Cache) evict(now time.Time) {
	var oldest string
	var oldestAt time.Time
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
			continue
		}
		if oldest == "" || e.expires.Before(oldestAt) {
			oldest, oldestAt = k, e.expires
		}
	}
	if len(c.entries) >= c.size && oldest != "" {
		delete(c.entries, oldest)
	}
}

// Len is the number of verifications kept.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
