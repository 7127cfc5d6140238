package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"sync"
	"sync/atomic"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Kind is the kind of a cached object.
type Kind int

// The kinds the cache holds. KindResync is not an object: it says the cache
// reloaded everything, so readers must reconcile from scratch. KindSettings
// events carry the *berthv1.ClusterSettings written (or, for a delete, the
// last one known); Cache.Settings tells what holds now.
const (
	KindResync Kind = iota
	KindNode
	KindService
	KindTask
	KindSettings
	KindNetwork
	KindVolume
	KindSecret
	KindConfig
)

// Action says what happened to an object.
type Action int

// The actions of cache events.
const (
	ActionPut Action = iota + 1
	ActionDelete
)

// Event is one change seen by the cache.
type Event struct {
	Kind   Kind
	Action Action
	// Object is the object after a put, or the last one known before a
	// delete. Like everything the cache hands out, it must not be modified.
	Object   Object
	Old      Object
	Revision int64
}

// Cache mirrors nodes, services, tasks and the cluster settings in memory, fed by one etcd watch,
// and fans out every change to subscribers. Objects it returns are shared:
// clone them (proto.Clone) before changing anything.
type Cache struct {
	store *Store
	log   *slog.Logger

	mu        sync.RWMutex
	rev       int64
	revSignal chan struct{} // closed and replaced whenever rev moves
	nodes     map[string]*berthv1.Node
	services  map[string]*berthv1.Service // by key
	networks  map[string]*berthv1.Network // by key
	volumes   map[string]*berthv1.Volume  // by key
	secrets   map[string]*berthv1.Secret  // by key; sealed
	configs   map[string]*berthv1.Config  // by key
	tasks     map[string]*berthv1.Task    // by id
	byService map[string]map[string]*berthv1.Task
	byNode    map[string]map[string]*berthv1.Task
	specs     specTable
	// states counts the cached tasks by observed state.
	states map[berthv1.TaskState]int
	// settings are read without the lock: every assignment to every node
	// reads them, often enough to queue behind the watch's writes. Set
	// with c.mu held; nil when none are stored.
	settings atomic.Pointer[berthv1.ClusterSettings]
	subs     map[*Subscription]struct{}
	synced   chan struct{}
	syncOnce sync.Once
}

// NewCache returns a cache over store; Run fills and feeds it.
func NewCache(s *Store, log *slog.Logger) *Cache {
	c := &Cache{
		store:     s,
		log:       log,
		revSignal: make(chan struct{}),
		subs:      map[*Subscription]struct{}{},
		synced:    make(chan struct{}),
	}
	c.reset()
	return c
}

func (c *Cache) reset() {
	c.nodes = map[string]*berthv1.Node{}
	c.services = map[string]*berthv1.Service{}
	c.networks = map[string]*berthv1.Network{}
	c.volumes = map[string]*berthv1.Volume{}
	c.secrets = map[string]*berthv1.Secret{}
	c.configs = map[string]*berthv1.Config{}
	c.tasks = map[string]*berthv1.Task{}
	c.byService = map[string]map[string]*berthv1.Task{}
	c.byNode = map[string]map[string]*berthv1.Task{}
	c.specs = specTable{}
	c.states = map[berthv1.TaskState]int{}
	c.settings.Store(nil)
}

// Synced is closed once the cache holds a full copy of the store.
func (c *Cache) Synced() <-chan struct{} { return c.synced }

// Run loads everything and then follows the watch until ctx ends. When the
// watch falls behind etcd's compaction it loads everything again.
func (c *Cache) Run(ctx context.Context) error {
	for {
		rev, err := c.load(ctx)
		if err != nil {
			return err
		}
		err = c.watch(ctx, rev)
		if ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, rpctypes.ErrCompacted) {
			c.log.Warn("store watch ended; reloading", "err", err)
		}
	}
}

func (c *Cache) load(ctx context.Context) (int64, error) {
	nodes, rev, err := List(ctx, c.store, NodesPrefix, func() *berthv1.Node { return &berthv1.Node{} })
	if err != nil {
		return 0, err
	}
	// Later lists read at the first list's revision: one consistent view.
	services, err := listAt(ctx, c.store, ServicesPrefix, rev, func() *berthv1.Service { return &berthv1.Service{} })
	if err != nil {
		return 0, err
	}
	tasks, err := listAt(ctx, c.store, TasksPrefix, rev, func() *berthv1.Task { return &berthv1.Task{} })
	if err != nil {
		return 0, err
	}
	networks, err := listAt(ctx, c.store, NetworksPrefix, rev, func() *berthv1.Network { return &berthv1.Network{} })
	if err != nil {
		return 0, err
	}
	volumes, err := listAt(ctx, c.store, VolumesPrefix, rev, func() *berthv1.Volume { return &berthv1.Volume{} })
	if err != nil {
		return 0, err
	}
	secrets, err := listAt(ctx, c.store, SecretsPrefix, rev, func() *berthv1.Secret { return &berthv1.Secret{} })
	if err != nil {
		return 0, err
	}
	configs, err := listAt(ctx, c.store, ConfigsPrefix, rev, func() *berthv1.Config { return &berthv1.Config{} })
	if err != nil {
		return 0, err
	}
	settings, err := getAt(ctx, c.store, SettingsKey, rev, &berthv1.ClusterSettings{})
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	c.reset()
	for _, n := range nodes {
		c.nodes[n.GetMeta().GetId()] = n
	}
	for _, s := range services {
		c.services[ServiceKey(s.Namespace, s.App, s.Name)] = s
	}
	for _, t := range tasks {
		c.putTask(t)
	}
	for _, n := range networks {
		c.networks[NetworkKey(n.Namespace, n.Name)] = n
	}
	for _, v := range volumes {
		c.volumes[VolumeKey(v.Namespace, v.Name)] = v
	}
	for _, s := range secrets {
		c.secrets[SecretKey(s.Namespace, s.Name)] = s
	}
	for _, cf := range configs {
		c.configs[ConfigKey(cf.Namespace, cf.Name)] = cf
	}
	c.settings.Store(settings)
	c.setRev(rev)
	subs := c.subscribers()
	c.mu.Unlock()
	for _, s := range subs {
		s.push(Event{Kind: KindResync, Revision: rev})
	}
	c.syncOnce.Do(func() { close(c.synced) })
	return rev, nil
}

func listAt[T Object](ctx context.Context, s *Store, prefix string, rev int64, newT func() T) ([]T, error) {
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev), clientv3.WithCountOnly())
	if err != nil {
		return nil, fmt.Errorf("counting %s: %w", prefix, err)
	}
	if resp.Count == 0 {
		return nil, nil
	}
	out := make([]T, 0, resp.Count)
	key, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	for {
		resp, err := s.cli.Get(ctx, key, clientv3.WithRange(end), clientv3.WithRev(rev), clientv3.WithLimit(listPage))
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", prefix, err)
		}
		for _, kv := range resp.Kvs {
			obj := newT()
			if err := decode(kv.Value, kv.ModRevision, obj); err != nil {
				return nil, fmt.Errorf("%s: %w", kv.Key, err)
			}
			out = append(out, obj)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// getAt reads the single object at key as of rev into obj, or returns nil
// when the key is absent.
func getAt[T Object](ctx context.Context, s *Store, key string, rev int64, obj T) (T, error) {
	var none T
	resp, err := s.cli.Get(ctx, key, clientv3.WithRev(rev))
	if err != nil {
		return none, fmt.Errorf("reading %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return none, nil
	}
	if err := decode(resp.Kvs[0].Value, resp.Kvs[0].ModRevision, obj); err != nil {
		return none, fmt.Errorf("%s: %w", key, err)
	}
	return obj, nil
}

func (c *Cache) watch(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := c.store.cli.Watch(wctx, Root, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithPrevKV())
	for resp := range wch {
		if err := resp.Err(); err != nil {
			return err
		}
		c.applyAll(resp.Events)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.New("watch channel closed")
}

// applyChunk is about how many events the cache applies under one hold of
// its lock. A watch that fell behind delivers tens of thousands at once;
// applying them all in one hold kept every reader (agent sessions among
// them) waiting for seconds.
const applyChunk = 512

// applyAll folds a watch response's events into the maps and passes them
// on to the subscribers. Objects are decoded before the lock is taken,
// and the lock is let go between chunks, each ending with the last event
// of a revision: a reader never sees half of a transaction.
func (c *Cache) applyAll(evs []*clientv3.Event) {
	objs := make([]Object, len(evs))
	for i, ev := range evs {
		objs[i] = c.decodeEvent(ev)
	}
	for start := 0; start < len(evs); {
		end := chunkEnd(evs, start, applyChunk)
		events := make([]Event, 0, end-start)
		c.mu.Lock()
		for i := start; i < end; i++ {
			if e, ok := c.apply(evs[i], objs[i]); ok {
				events = append(events, e)
			}
		}
		c.setRev(evs[end-1].Kv.ModRevision)
		subs := c.subscribers()
		c.mu.Unlock()
		for _, s := range subs {
			s.push(events...)
		}
		start = end
	}
}

// chunkEnd is where the chunk of evs that starts at start ends: about n
// events on, but never inside a revision.
func chunkEnd(evs []*clientv3.Event, start, n int) int {
	end := min(start+n, len(evs))
	for end < len(evs) && evs[end].Kv.ModRevision == evs[end-1].Kv.ModRevision {
		end++
	}
	return end
}

// kindOf says which kind of object key holds; false for a key the cache
// does not hold.
func kindOf(key string) (Kind, bool) {
	switch {
	case key == SettingsKey:
		return KindSettings, true
	case strings.HasPrefix(key, NodesPrefix):
		return KindNode, true
	case strings.HasPrefix(key, ServicesPrefix):
		return KindService, true
	case strings.HasPrefix(key, TasksPrefix):
		return KindTask, true
	case strings.HasPrefix(key, NetworksPrefix):
		return KindNetwork, true
	case strings.HasPrefix(key, VolumesPrefix):
		return KindVolume, true
	case strings.HasPrefix(key, SecretsPrefix):
		return KindSecret, true
	case strings.HasPrefix(key, ConfigsPrefix):
		return KindConfig, true
	}
	return 0, false
}

// decodeEvent decodes the object an event puts, by the kind its key
// names; nil for a delete, a key the cache does not hold, or a value that
// does not decode (logged).
func (c *Cache) decodeEvent(ev *clientv3.Event) Object {
	key := string(ev.Kv.Key)
	kind, held := kindOf(key)
	if ev.Type == mvccpb.DELETE || !held {
		return nil
	}
	var obj Object
	switch kind {
	case KindSettings:
		obj = &berthv1.ClusterSettings{}
	case KindNode:
		obj = &berthv1.Node{}
	case KindService:
		obj = &berthv1.Service{}
	case KindTask:
		obj = &berthv1.Task{}
	case KindNetwork:
		obj = &berthv1.Network{}
	case KindVolume:
		obj = &berthv1.Volume{}
	case KindSecret:
		obj = &berthv1.Secret{}
	case KindConfig:
		obj = &berthv1.Config{}
	}
	if err := decode(ev.Kv.Value, ev.Kv.ModRevision, obj); err != nil {
		c.log.Error("skipping undecodable object", "key", key, "err", err)
		return nil
	}
	return obj
}

// apply folds one etcd event into the maps, with obj the object it puts
// as decodeEvent made it; c.mu is held.
func (c *Cache) apply(ev *clientv3.Event, obj Object) (Event, bool) {
	key := string(ev.Kv.Key)
	del := ev.Type == mvccpb.DELETE
	out := Event{Action: ActionPut, Revision: ev.Kv.ModRevision}
	if del {
		out.Action = ActionDelete
	}
	kind, held := kindOf(key)
	if !held {
		return out, false
	}
	out.Kind = kind
	switch kind {
	case KindSettings:
		old := c.settings.Load()
		if old != nil {
			out.Old = old
		}
		if del {
			if old == nil {
				return out, false
			}
			c.settings.Store(nil)
			out.Object = old
			return out, true
		}
		st, ok := obj.(*berthv1.ClusterSettings)
		if !ok {
			return out, false
		}
		c.settings.Store(st)
		out.Object = st
		return out, true
	case KindNode:
		id := path.Base(key)
		old, had := c.nodes[id]
		if had {
			out.Old = old
		}
		if del {
			if !had {
				return out, false
			}
			delete(c.nodes, id)
			out.Object = old
			return out, true
		}
		n, ok := obj.(*berthv1.Node)
		if !ok {
			return out, false
		}
		c.nodes[id] = n
		out.Object = n
		return out, true
	case KindService:
		return applyKeyed(c.services, key, del, obj, out)
	case KindNetwork:
		return applyKeyed(c.networks, key, del, obj, out)
	case KindVolume:
		return applyKeyed(c.volumes, key, del, obj, out)
	case KindSecret:
		return applyKeyed(c.secrets, key, del, obj, out)
	case KindConfig:
		return applyKeyed(c.configs, key, del, obj, out)
	case KindTask:
		id := path.Base(key)
		old, had := c.tasks[id]
		if had {
			out.Old = old
			c.dropTask(old)
		}
		if del {
			if !had {
				return out, false
			}
			out.Object = old
			return out, true
		}
		t, ok := obj.(*berthv1.Task)
		if !ok {
			return out, false
		}
		c.putTask(t)
		out.Object = t
		return out, true
	}
	return out, false
}

// applyKeyed folds one event into m, a map of objects by key.
func applyKeyed[T Object](m map[string]T, key string, del bool, obj Object, out Event) (Event, bool) {
	old, had := m[key]
	if had {
		out.Old = old
	}
	if del {
		if !had {
			return out, false
		}
		delete(m, key)
		out.Object = old
		return out, true
	}
	o, ok := obj.(T)
	if !ok {
		return out, false
	}
	m[key] = o
	out.Object = o
	return out, true
}

func (c *Cache) putTask(t *berthv1.Task) {
	id := t.GetMeta().GetId()
	c.specs.share(t)
	c.states[t.GetStatus().GetState()]++
	c.tasks[id] = t
	addIndex(c.byService, t.ServiceId, id, t)
	if t.NodeId != "" {
		addIndex(c.byNode, t.NodeId, id, t)
	}
}

func (c *Cache) dropTask(t *berthv1.Task) {
	id := t.GetMeta().GetId()
	c.specs.release(t)
	state := t.GetStatus().GetState()
	if c.states[state]--; c.states[state] <= 0 {
		delete(c.states, state)
	}
	delete(c.tasks, id)
	dropIndex(c.byService, t.ServiceId, id)
	dropIndex(c.byNode, t.NodeId, id)
}

func addIndex(idx map[string]map[string]*berthv1.Task, k, id string, t *berthv1.Task) {
	m := idx[k]
	if m == nil {
		m = map[string]*berthv1.Task{}
		idx[k] = m
	}
	m[id] = t
}

func dropIndex(idx map[string]map[string]*berthv1.Task, k, id string) {
	if m := idx[k]; m != nil {
		delete(m, id)
		if len(m) == 0 {
			delete(idx, k)
		}
	}
}

func (c *Cache) setRev(rev int64) {
	if rev > c.rev {
		c.rev = rev
		close(c.revSignal)
		c.revSignal = make(chan struct{})
	}
}

func (c *Cache) subscribers() []*Subscription {
	out := make([]*Subscription, 0, len(c.subs))
	for s := range c.subs {
		out = append(out, s)
	}
	return out
}

// Revision is the etcd revision the cache has caught up with.
func (c *Cache) Revision() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rev
}

// WaitRevision blocks until the cache has seen revision rev, so a caller
// reads its own writes.
func (c *Cache) WaitRevision(ctx context.Context, rev int64) error {
	for {
		c.mu.RLock()
		cur, signal := c.rev, c.revSignal
		c.mu.RUnlock()
		if cur >= rev {
			return nil
		}
		select {
		case <-signal:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
