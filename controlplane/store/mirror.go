package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// Mirror keeps an in-memory copy of every message under one prefix, fed by
// an etcd watch: the way components other than the cache (API tokens,
// revoked certificates, registry credentials) follow a small prefix
// without touching etcd themselves. Run lists the prefix, then applies each
// change; after a watch error it lists again.
type Mirror[T proto.Message] struct {
	st       *Store
	prefix   string
	newT     func() T
	onChange func(name string, v T, deleted bool)
	log      *slog.Logger

	mu     sync.RWMutex
	items  map[string]T
	rev    int64
	synced chan struct{}
	once   sync.Once
	// moved is closed and replaced whenever rev moves.
	moved chan struct{}
}

// NewMirror returns a mirror of prefix. Names are keys without the prefix.
// onChange, when not nil, is called after each change is applied (not for
// the first list, nor for a list after an error, where it is called for
// names that changed or went).
func NewMirror[T proto.Message](st *Store, prefix string, newT func() T, onChange func(name string, v T, deleted bool), log *slog.Logger) *Mirror[T] {
	if log == nil {
		log = slog.Default()
	}
	return &Mirror[T]{st: st, prefix: prefix, newT: newT, onChange: onChange, log: log,
		items: map[string]T{}, synced: make(chan struct{}), moved: make(chan struct{})}
}

// Synced is closed once the first list is loaded.
func (m *Mirror[T]) Synced() <-chan struct{} { return m.synced }

// WaitSynced waits for the first list, or for ctx.
func (m *Mirror[T]) WaitSynced(ctx context.Context) error {
	select {
	case <-m.synced:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Get returns the message at name.
func (m *Mirror[T]) Get(name string) (T, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	v, ok := m.items[name]
	return v, ok
}

// List returns every message; callers must not change them.
func (m *Mirror[T]) List() []T {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]T, 0, len(m.items))
	for _, v := range m.items {
		out = append(out, v)
	}
	return out
}

// Revision is the store revision the mirror has seen up to.
func (m *Mirror[T]) Revision() int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.rev
}

// mirrorRetry is the pause before listing again after a watch fails.
const mirrorRetry = 500 * time.Millisecond

// Run keeps the mirror current until ctx ends.
func (m *Mirror[T]) Run(ctx context.Context) error {
	for {
		rev, err := m.load(ctx)
		if err == nil {
			err = m.watch(ctx, rev)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		m.log.Warn("following the store again", "prefix", m.prefix, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(mirrorRetry):
		}
	}
}

func (m *Mirror[T]) decode(kv *mvccpb.KeyValue) (T, error) {
	v := m.newT()
	if err := proto.Unmarshal(kv.Value, v); err != nil {
		return v, err
	}
	if o, ok := any(v).(Object); ok && o.GetMeta() != nil {
		o.GetMeta().Version = kv.ModRevision
	}
	return v, nil
}

func (m *Mirror[T]) load(ctx context.Context) (int64, error) {
	resp, err := m.st.cli.Get(ctx, m.prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("listing %s: %w", m.prefix, err)
	}
	items := make(map[string]T, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		v, err := m.decode(kv)
		if err != nil {
			m.log.Error("skipping an undecodable record", "key", string(kv.Key), "err", err)
			continue
		}
		items[strings.TrimPrefix(string(kv.Key), m.prefix)] = v
	}
	m.mu.Lock()
	old := m.items
	m.items = items
	m.setRev(resp.Header.Revision)
	m.mu.Unlock()
	first := false
	m.once.Do(func() { first = true; close(m.synced) })
	if !first && m.onChange != nil {
		for name, v := range items {
			if prev, ok := old[name]; !ok || !proto.Equal(prev, v) {
				m.onChange(name, v, false)
			}
		}
		for name, v := range old {
			if _, ok := items[name]; !ok {
				m.onChange(name, v, true)
			}
		}
	}
	return resp.Header.Revision, nil
}

func (m *Mirror[T]) watch(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range m.st.cli.Watch(wctx, m.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if err := resp.Err(); err != nil {
			return err
		}
		for _, ev := range resp.Events {
			name := strings.TrimPrefix(string(ev.Kv.Key), m.prefix)
			if ev.Type == mvccpb.DELETE {
				m.mu.Lock()
				v, had := m.items[name]
				delete(m.items, name)
				m.setRev(ev.Kv.ModRevision)
				m.mu.Unlock()
				if had && m.onChange != nil {
					m.onChange(name, v, true)
				}
				continue
			}
			v, err := m.decode(ev.Kv)
			if err != nil {
				m.log.Error("skipping an undecodable record", "key", string(ev.Kv.Key), "err", err)
				continue
			}
			m.mu.Lock()
			m.items[name] = v
			m.setRev(ev.Kv.ModRevision)
			m.mu.Unlock()
			if m.onChange != nil {
				m.onChange(name, v, false)
			}
		}
		if resp.Header.Revision > 0 {
			m.mu.Lock()
			m.setRev(resp.Header.Revision)
			m.mu.Unlock()
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New("the watch ended")
}

// setRev records that the mirror has seen rev; m.mu is held.
func (m *Mirror[T]) setRev(rev int64) {
	if rev <= m.rev {
		return
	}
	m.rev = rev
	close(m.moved)
	m.moved = make(chan struct{})
}

// WaitRevision waits until the mirror has seen rev (a revision a write
// returned), or for ctx.
func (m *Mirror[T]) WaitRevision(ctx context.Context, rev int64) error {
	for {
		m.mu.RLock()
		seen, moved := m.rev, m.moved
		m.mu.RUnlock()
		if seen >= rev {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-moved:
		}
	}
}
