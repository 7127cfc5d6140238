package imagesig

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCache(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1000, 0)
	calls := 0
	fail := false
	verify := func(_ context.Context, repo, digest string, keys []Key, _ Registry) (string, error) {
		calls++
		if fail {
			return "", ErrUnsigned
		}
		return keys[0].Name, nil
	}
	c := NewCache(WithVerify(verify), WithClock(func() time.Time { return now }), WithTTL(time.Minute), WithSize(3))
	k1 := []Key{{Name: "a", PEM: "A"}}
	k2 := []Key{{Name: "b", PEM: "B"}}

	steps := []struct {
		name       string
		repo, dig  string
		keys       []Key
		advance    time.Duration
		fail       bool
		wantCalls  int
		wantCached bool
		wantErr    bool
	}{
		{"first verification asks", "r", "d1", k1, 0, false, 1, false, false},
		{"same again is cached", "r", "d1", k1, 0, false, 1, true, false},
		{"another key set asks", "r", "d1", k2, 0, false, 2, false, false},
		{"another repository asks", "r2", "d1", k1, 0, false, 3, false, false},
		{"within the TTL still cached", "r", "d1", k1, 59 * time.Second, false, 3, true, false},
		{"after the TTL asks again", "r", "d1", k1, 2 * time.Second, false, 4, false, false},
		{"a failure is not kept", "r", "d9", k1, 0, true, 5, false, true},
		{"so a later signature counts at once", "r", "d9", k1, 0, false, 6, false, false},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		fail = s.fail
		_, cached, err := c.Verify(ctx, s.repo, s.dig, s.keys, Registry{})
		if calls != s.wantCalls || cached != s.wantCached || (err != nil) != s.wantErr {
			t.Fatalf("%s: calls %d cached %v err %v; want calls %d cached %v err %v", s.name, calls, cached, err, s.wantCalls, s.wantCached, s.wantErr)
		}
		if err != nil && !errors.Is(err, ErrUnsigned) {
			t.Fatalf("%s: error %v lost its kind", s.name, err)
		}
	}
	if n := c.Len(); n > 3 {
		t.Fatalf("cache holds %d entries, bound is 3", n)
	}
	for _, m := range []struct {
		result, cached string
		want           float64
	}{{"signed", "false", 5}, {"signed", "true", 2}, {"unsigned", "false", 1}, {"error", "false", 0}} {
		if got := testutil.ToFloat64(c.results.WithLabelValues(m.result, m.cached)); got != m.want {
			t.Errorf("berth_image_verifications_total{result=%q,cached=%q} = %v, want %v", m.result, m.cached, got, m.want)
		}
	}
}

func TestCacheKeyIgnoresKeyOrder(t *testing.T) {
	a := []Key{{Name: "a", PEM: "A"}, {Name: "b", PEM: "B"}}
	b := []Key{{Name: "b", PEM: "B"}, {Name: "a", PEM: "A"}}
	if cacheKey("r", "d", a) != cacheKey("r", "d", b) {
		t.Fatal("the same key set in another order is another cache entry")
	}
	if cacheKey("r", "d", a) == cacheKey("r", "d", a[:1]) {
		t.Fatal("a smaller key set shares the entry")
	}
}

// TestCacheJoinsConcurrentVerifications: the replicas of a new service
// starting at once ask the registry once.
func TestCacheJoinsConcurrentVerifications(t *testing.T) {
	release, started := make(chan struct{}), make(chan struct{}, 1)
	var mu sync.Mutex
	calls := 0
	verify := func(context.Context, string, string, []Key, Registry) (string, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		select {
		case started <- struct{}{}:
		default:
		}
		<-release
		return "k", nil
	}
	c := NewCache(WithVerify(verify))
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			if _, _, err := c.Verify(context.Background(), "r", "d", []Key{{Name: "k", PEM: "P"}}, Registry{}); err != nil {
				errs <- err
			}
		})
	}
	// Every caller is either waiting on the one verification or will find
	// its result cached; let the verification finish once the first
	// started.
	<-started
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("%d verifications for %d concurrent starts, want 1", calls, n)
	}
}

// BenchmarkCacheVerifyHit is what a task start under a trust policy pays
// on the server and on the node once its image's verification is cached.
func BenchmarkCacheVerifyHit(b *testing.B) {
	c := NewCache(WithVerify(func(context.Context, string, string, []Key, Registry) (string, error) { return "k", nil }))
	keys := []Key{{Name: "release", PEM: "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"}}
	ctx := context.Background()
	if _, _, err := c.Verify(ctx, "127.0.0.1:5000/team/app", "sha256:1", keys, Registry{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, cached, err := c.Verify(ctx, "127.0.0.1:5000/team/app", "sha256:1", keys, Registry{}); err != nil || !cached {
			b.Fatalf("cached %v, err %v", cached, err)
		}
	}
}
