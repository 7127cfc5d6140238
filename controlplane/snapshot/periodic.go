package snapshot

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/berthproject/berth/api/snapshotfile"
	"github.com/prometheus/client_golang/prometheus"
)

// DirName is the folder of a server's data dir its periodic snapshots go
// in.
const DirName = "snapshots"

// DefaultKeep is how many periodic snapshots are kept when not told.
const DefaultKeep = 5

// File names of periodic snapshots: the time sorts them.
const (
	filePrefix = "berth-"
	fileSuffix = ".snapshot"
	fileTime   = "20060102T150405.000Z"
)

// Schedule says when and where the leader writes snapshots.
type Schedule struct {
	// Interval between snapshots; 0 writes none.
	Interval time.Duration
	// Keep is how many of the newest snapshots stay; older ones are
	// removed. 0 is DefaultKeep.
	Keep int
	// Dir is where they are written.
	Dir string
	// Passphrase, when set, seals the key-encryption key into each
	// snapshot; without it they carry no key.
	Passphrase []byte
}

// Periodic writes snapshots on a schedule while it runs (on the leader).
// A failure is logged and counted, and the next one is tried an interval
// later: a snapshot never stops the server.
type Periodic struct {
	maker *Maker
	sched Schedule
	log   *slog.Logger

	lastSuccess prometheus.Gauge
	lastSize    prometheus.Gauge
	failures    prometheus.Counter
	// taken is told of each snapshot written, for tests.
	taken func(path string)
}

// NewPeriodic returns the periodic snapshots of maker on sched.
func NewPeriodic(maker *Maker, sched Schedule, log *slog.Logger) *Periodic {
	sched.Keep = cmp.Or(sched.Keep, DefaultKeep)
	return &Periodic{
		maker: maker, sched: sched, log: cmp.Or(log, slog.Default()),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "berth_snapshot_last_success_timestamp_seconds",
			Help: "When this server last wrote a periodic snapshot (Unix time); 0 before its first.",
		}),
		lastSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "berth_snapshot_last_size_bytes",
			Help: "Size of the snapshot file this server last wrote periodically.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_snapshot_failures_total",
			Help: "Periodic snapshots that failed on this server (see its log).",
		}),
	}
}

// Collectors are the periodic snapshots' metrics.
func (p *Periodic) Collectors() []prometheus.Collector {
	return []prometheus.Collector{p.lastSuccess, p.lastSize, p.failures}
}

// Run writes snapshots until ctx ends, and only then returns (it runs
// among the leader's parts, where one that returns ends the term). The
// first is due an interval after the newest one already in the folder (at
// once when there is none), so a server that restarts or a new leader
// keeps the pace.
func (p *Periodic) Run(ctx context.Context) error {
	if p.sched.Interval <= 0 {
		<-ctx.Done()
		return nil
	}
	if err := os.MkdirAll(p.sched.Dir, 0o700); err != nil {
		p.fail(fmt.Errorf("snapshot folder: %w", err))
	}
	wait := time.Duration(0)
	if newest, ok := p.newest(); ok {
		wait = max(0, time.Until(newest.Add(p.sched.Interval)))
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		if err := p.once(ctx); err != nil && ctx.Err() == nil {
			p.fail(err)
		}
		timer.Reset(p.sched.Interval)
	}
}

func (p *Periodic) fail(err error) {
	p.failures.Inc()
	p.log.Error("periodic snapshot failed; the next is tried an interval later", "dir", p.sched.Dir, "err", err)
}

// once writes one snapshot and removes the oldest beyond Keep.
func (p *Periodic) once(ctx context.Context) error {
	path := filepath.Join(p.sched.Dir, filePrefix+p.maker.now().UTC().Format(fileTime)+fileSuffix)
	f, err := snapshotfile.Create(path, false)
	if err != nil {
		return err
	}
	defer f.Abort()
	opts := Options{Passphrase: p.sched.Passphrase, WithoutKey: len(p.sched.Passphrase) == 0}
	if _, err := p.maker.Save(ctx, f, opts); err != nil {
		return err
	}
	if err := f.Commit(); err != nil {
		return err
	}
	if st, err := os.Stat(path); err == nil {
		p.lastSize.Set(float64(st.Size()))
	}
	p.lastSuccess.SetToCurrentTime()
	p.log.Info("periodic snapshot written", "file", path, "with_key", !opts.WithoutKey)
	if p.taken != nil {
		p.taken(path)
	}
	return p.prune()
}

// files are the periodic snapshots in the folder, oldest first.
func (p *Periodic) files() ([]string, error) {
	entries, err := os.ReadDir(p.sched.Dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); e.Type().IsRegular() && strings.HasPrefix(n, filePrefix) && strings.HasSuffix(n, fileSuffix) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

// newest is when the newest snapshot in the folder was taken.
func (p *Periodic) newest() (time.Time, bool) {
	names, err := p.files()
	if err != nil || len(names) == 0 {
		return time.Time{}, false
	}
	n := names[len(names)-1]
	t, err := time.Parse(fileTime, strings.TrimSuffix(strings.TrimPrefix(n, filePrefix), fileSuffix))
	return t, err == nil
}

// prune removes the oldest snapshots beyond Keep.
func (p *Periodic) prune() error {
	names, err := p.files()
	if err != nil {
		return fmt.Errorf("listing snapshots to prune: %w", err)
	}
	for _, n := range names[:max(0, len(names)-p.sched.Keep)] {
		if err := os.Remove(filepath.Join(p.sched.Dir, n)); err != nil {
			return fmt.Errorf("removing an old snapshot: %w", err)
		}
	}
	return nil
}
