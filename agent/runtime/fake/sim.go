package fake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/berthproject/berth/agent/runtime"
)

// Options make a Runtime behave like a node under load, for the scale
// harness (simulated nodes). The zero value is New's behaviour.
type Options struct {
	// StartLatency is how long each Start takes, as a real runtime's
	// create-and-start does (about 55-80 ms with containerd on 2 cores).
	StartLatency time.Duration
	// FailureRate is the share of starts (0 to 1) that fail, drawn for
	// each start: the container exits with code 1 as it starts, so Start
	// returns an error, the task fails, and the control plane replaces it
	// by the service's restart policy.
	FailureRate float64
	// CrashAfter, when set, makes those containers start and run for
	// CrashAfter before they exit with code 1, as a container that
	// crashes after a while: the control plane sees them running, then
	// failed.
	CrashAfter time.Duration
	// AnyImage makes every pull succeed at once, whatever the image and
	// with no registry, with a digest derived from the image's name, so
	// every simulated node reports the same digest for the same tag.
	// Without it pulls need SetPull.
	AnyImage bool
	// Seed seeds the failure draws, for repeatable runs; 0 draws a random
	// seed.
	Seed uint64
}

// Validate says what is wrong with the options, naming the field.
func (o Options) Validate() error {
	if o.StartLatency < 0 {
		return fmt.Errorf("fake runtime: start latency %s is negative", o.StartLatency)
	}
	if o.FailureRate < 0 || o.FailureRate > 1 || o.FailureRate != o.FailureRate {
		return fmt.Errorf("fake runtime: failure rate %v: want a share between 0 and 1", o.FailureRate)
	}
	if o.CrashAfter < 0 {
		return fmt.Errorf("fake runtime: crash delay %s is negative", o.CrashAfter)
	}
	return nil
}

// NewWith returns an empty fake runtime that simulates a node as opts
// say.
func NewWith(opts Options) (*Runtime, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	seed := opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	f := New()
	f.sim = opts
	f.rng = rand.New(rand.NewPCG(seed, seed>>1|1))
	return f, nil
}

// simulateStart waits out the start latency, without holding f.mu so
// that starts on one node overlap as they do on a real runtime.
func (f *Runtime) simulateStart(ctx context.Context) error {
	if f.sim.StartLatency <= 0 {
		return nil
	}
	t := time.NewTimer(f.sim.StartLatency)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// failStart draws whether a start fails; f.mu must be held.
func (f *Runtime) failStart() bool {
	return f.sim.FailureRate > 0 && f.rng.Float64() < f.sim.FailureRate
}

// crashLater ends container c's process, just started, with code 1 after
// CrashAfter, unless it ended before; f.mu must be held.
func (f *Runtime) crashLater(c *fakeContainer) {
	proc := c.proc
	time.AfterFunc(f.sim.CrashAfter, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if c.proc == proc && c.status.State == runtime.StateRunning {
			c.exit(1)
		}
	})
}

// anyImageDigest is the digest an AnyImage pull finds for ref: the one
// ref pins, else one derived from the name.
func anyImageDigest(ref string) string {
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		return ref[i+1:]
	}
	sum := sha256.Sum256([]byte(ref))
	return "sha256:" + hex.EncodeToString(sum[:])
}
