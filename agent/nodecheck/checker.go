package nodecheck

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Defaults of the checker and its floors.
const (
	// DefaultPeriod is how often the checks run when nothing asks sooner.
	DefaultPeriod = 5 * time.Second
	// DefaultDiskFloor is the free space the data directory needs:
	// enough to unpack an image and write logs for a while.
	DefaultDiskFloor = "500MiB"
	// DefaultInodeFloor is the share of free inodes it needs.
	DefaultInodeFloor = "5%"
)

// Probes gather the facts the checks judge. A nil probe's check is not
// made (the fake runtime has no containerd, a node without a container
// network has no subnet).
type Probes struct {
	// Runtime asks the container runtime whether it answers.
	Runtime func(ctx context.Context) error
	// RuntimeAddress names where the runtime is asked, for the message.
	RuntimeAddress string
	// Network lists the node's subnet, own device and addresses.
	Network func(ctx context.Context) (NetworkFacts, error)
	// Disk reads the data directory's file system.
	Disk func() (DiskFacts, error)
}

// Config configures a Checker.
type Config struct {
	Probes Probes
	// DiskFloor and InodeFloor are the floors of the disk check.
	DiskFloor, InodeFloor Floor
	// Period is how often the checks run; 0 means DefaultPeriod.
	Period time.Duration
	// Changed is called, from the checker's goroutine, with every
	// condition whenever one changed.
	Changed func([]*berthv1.NodeCondition)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// Checker runs the checks and keeps the node's conditions.
type Checker struct {
	cfg  Config
	kick chan struct{}

	mu    sync.Mutex
	conds []*berthv1.NodeCondition
}

// New returns a checker; Check runs the checks once, Run keeps running
// them.
func New(cfg Config) *Checker {
	if cfg.Period <= 0 {
		cfg.Period = DefaultPeriod
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Checker{cfg: cfg, kick: make(chan struct{}, 1)}
}

// Conditions returns the conditions as last checked (copies).
func (c *Checker) Conditions() []*berthv1.NodeCondition {
	c.mu.Lock()
	defer c.mu.Unlock()
	return cloneAll(c.conds)
}

// Kick asks Run to check at once: a container create failed in a way
// that may come from a failing condition, or the node got its subnet.
func (c *Checker) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Check runs every probe once and folds the results in; it reports
// whether any condition changed (and calls Changed if so).
func (c *Checker) Check(ctx context.Context) bool {
	results := c.evaluate(ctx)
	c.mu.Lock()
	next, changed := Merge(c.conds, results, c.cfg.Now())
	c.conds = next
	c.mu.Unlock()
	if changed {
		for _, r := range results {
			if !r.OK {
				c.cfg.Log.Warn("node condition failing", "type", r.Type, "message", r.Message)
			}
		}
		if c.cfg.Changed != nil {
			c.cfg.Changed(cloneAll(next))
		}
	}
	return changed
}

// evaluate runs the probes and judges their facts.
func (c *Checker) evaluate(ctx context.Context) []Result {
	p := c.cfg.Probes
	var out []Result
	if p.Runtime != nil {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := p.Runtime(pctx)
		cancel()
		out = append(out, EvalRuntime(p.RuntimeAddress, err))
	}
	if p.Network != nil {
		facts, err := p.Network(ctx)
		if r, ok := EvalNetwork(facts, err); ok {
			out = append(out, r)
		}
	}
	if p.Disk != nil {
		facts, err := p.Disk()
		out = append(out, EvalDisk(facts, err, c.cfg.DiskFloor, c.cfg.InodeFloor))
	}
	return out
}

// Run checks every period, and at once on Kick, until ctx ends.
func (c *Checker) Run(ctx context.Context) error {
	tick := time.NewTicker(c.cfg.Period)
	defer tick.Stop()
	for {
		c.Check(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-c.kick:
		}
	}
}

// Merge folds results into the conditions prev held, in results' order:
// a condition keeps its since while its ok stays the same, and takes now
// when ok flips or the condition is new. A type prev had that results
// lack (its probe had nothing to judge) is kept as it was. changed says
// whether anything (ok, message, the set of types) differs from prev.
func Merge(prev []*berthv1.NodeCondition, results []Result, now time.Time) (next []*berthv1.NodeCondition, changed bool) {
	old := make(map[string]*berthv1.NodeCondition, len(prev))
	for _, c := range prev {
		old[c.GetType()] = c
	}
	seen := map[string]bool{}
	for _, r := range results {
		seen[r.Type] = true
		c := &berthv1.NodeCondition{Type: r.Type, Ok: r.OK, Message: r.Message, Since: timestamppb.New(now)}
		if o, ok := old[r.Type]; ok && o.GetOk() == r.OK {
			c.Since = o.GetSince()
			changed = changed || o.GetMessage() != r.Message
		} else {
			changed = true
		}
		next = append(next, c)
	}
	for _, c := range prev {
		if !seen[c.GetType()] {
			next = append(next, c)
		}
	}
	return next, changed
}

func cloneAll(cs []*berthv1.NodeCondition) []*berthv1.NodeCondition {
	out := make([]*berthv1.NodeCondition, 0, len(cs))
	for _, c := range cs {
		out = append(out, &berthv1.NodeCondition{Type: c.GetType(), Ok: c.GetOk(), Message: c.GetMessage(), Since: c.GetSince()})
	}
	return slices.Clip(out)
}
