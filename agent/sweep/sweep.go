// Package sweep removes what a node holds for tasks its agent no longer
// knows: containers left by a removal cut short, and network namespaces,
// links and port rules left by a crash or by a container that ended while
// the agent was away. The decision is the pure function Collect; the
// removals are asked of their owners (the runtime, the node network).
package sweep

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/berthproject/berth/agent/runtime"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultPeriod is how often a node sweeps: leftovers cost little while
// they wait, and a sweep lists every container and namespace.
const DefaultPeriod = time.Minute

// Known is what the agent's worker knows of its tasks when a sweep looks.
type Known struct {
	// Tasks maps each task the worker knows to whether its container may
	// still run, and so needs its network. A task that ended keeps its
	// container (ps -a, logs) but not its network.
	Tasks map[string]bool
	// InFlight are the tasks whose containers are being created, started
	// or removed right now: their objects may be half made, and are the
	// worker's to finish.
	InFlight map[string]bool
}

// Observed is what a sweep found on the node, by task id.
type Observed struct {
	// Containers are the agent's containers in its runtime.
	Containers []string
	// Attachments are the ids that hold anything of the node's network:
	// an attachment record or a network namespace.
	Attachments []string
}

// Garbage is what a sweep removes.
type Garbage struct {
	// Containers belong to no known task: removed, with their network.
	Containers []string
	// Attachments belong to no known task, or to one that ended, and have
	// no container to remove with them: detached.
	Attachments []string
}

// Empty reports whether there is nothing to remove.
func (g Garbage) Empty() bool { return len(g.Containers) == 0 && len(g.Attachments) == 0 }

// Collect decides what of o is garbage given k: containers of tasks the
// worker does not know, and network of tasks that do not know or whose
// container cannot run any more; never anything of a task in flight. The
// lists come out sorted, without duplicates.
func Collect(k Known, o Observed) Garbage {
	var g Garbage
	removed := map[string]bool{}
	for _, id := range o.Containers {
		if _, known := k.Tasks[id]; known || k.InFlight[id] || removed[id] {
			continue
		}
		removed[id] = true
		g.Containers = append(g.Containers, id)
	}
	detached := map[string]bool{}
	for _, id := range o.Attachments {
		if live := k.Tasks[id]; live || k.InFlight[id] || removed[id] || detached[id] {
			continue
		}
		detached[id] = true
		g.Attachments = append(g.Attachments, id)
	}
	slices.Sort(g.Containers)
	slices.Sort(g.Attachments)
	return g
}

// Tasks tells a sweep what the worker knows; worker.Worker implements it
// (through Inventory).
type Tasks interface {
	Known() Known
}

// Containers are the agent's containers; runtime.Containers implements it.
type Containers interface {
	List(ctx context.Context) ([]runtime.Status, error)
	// Remove deletes a container with its network attachment.
	Remove(ctx context.Context, id string) error
}

// Network is the node's container network.
type Network interface {
	// Attached lists the ids holding a record or a namespace; nil while
	// the network is not set up.
	Attached() ([]string, error)
	// Detach deletes an id's namespace, links, port rules and files.
	Detach(ctx context.Context, id string) error
}

// Config says what a Sweeper sweeps.
type Config struct {
	Tasks      Tasks
	Containers Containers
	// Network is nil on a node without a container network (the fake
	// runtime).
	Network Network
	// Period between sweeps; default DefaultPeriod.
	Period time.Duration
	Log    *slog.Logger
}

// Sweeper sweeps a node now and then.
type Sweeper struct {
	cfg     Config
	kick    chan struct{}
	removed *prometheus.CounterVec
}

// New returns a Sweeper; Run starts it.
func New(cfg Config) *Sweeper {
	if cfg.Period <= 0 {
		cfg.Period = DefaultPeriod
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Sweeper{
		cfg:  cfg,
		kick: make(chan struct{}, 1),
		removed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_node_swept_total",
			Help: "Objects this node's sweep removed because they belonged to no task its agent knows (container) or to none that runs (network).",
		}, []string{"object"}),
	}
}

// Collector is the sweep's removal counter, by object.
func (s *Sweeper) Collector() prometheus.Collector { return s.removed }

// Kick asks for a sweep soon (the network was just set up, say).
func (s *Sweeper) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run sweeps at once, then every period and on each Kick, until ctx ends.
// A failed sweep is logged and tried again at the next one.
func (s *Sweeper) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Period)
	defer t.Stop()
	for {
		if _, err := s.Once(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Log.Warn("sweeping the node's leftovers", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.kick:
		}
	}
}

// Once sweeps the node one time and returns what it removed; the error
// joins every failure, what could be removed is.
func (s *Sweeper) Once(ctx context.Context) (Garbage, error) {
	// Observed first, known after: a task assigned in between is then
	// known, and its new container or namespace never taken for garbage.
	var o Observed
	containers, err := s.cfg.Containers.List(ctx)
	if err != nil {
		return Garbage{}, err
	}
	for _, c := range containers {
		o.Containers = append(o.Containers, c.ID)
	}
	if s.cfg.Network != nil {
		if o.Attachments, err = s.cfg.Network.Attached(); err != nil {
			return Garbage{}, err
		}
	}
	g := Collect(s.cfg.Tasks.Known(), o)
	var done Garbage
	var errs []error
	for _, id := range g.Containers {
		if err := s.cfg.Containers.Remove(ctx, id); err != nil {
			errs = append(errs, err)
			continue
		}
		done.Containers = append(done.Containers, id)
		s.removed.WithLabelValues("container").Inc()
	}
	for _, id := range g.Attachments {
		if err := s.cfg.Network.Detach(ctx, id); err != nil {
			errs = append(errs, err)
			continue
		}
		done.Attachments = append(done.Attachments, id)
		s.removed.WithLabelValues("network").Inc()
	}
	if !done.Empty() {
		s.cfg.Log.Info("swept leftovers of tasks this node no longer runs",
			"containers", done.Containers, "networks", done.Attachments)
	}
	return done, errors.Join(errs...)
}
