package store

import (
	"maps"
	"sort"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// Node returns the node with id.
func (c *Cache) Node(id string) (*berthv1.Node, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n, ok := c.nodes[id]
	return n, ok
}

// Nodes returns every node, ordered by name.
func (c *Cache) Nodes() []*berthv1.Node {
	c.mu.RLock()
	out := make([]*berthv1.Node, 0, len(c.nodes))
	for _, n := range c.nodes {
		out = append(out, n)
	}
	c.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].GetMeta().GetId() < out[j].GetMeta().GetId()
	})
	return out
}

// Service returns the service stored at key.
func (c *Cache) Service(key string) (*berthv1.Service, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s, ok := c.services[key]
	return s, ok
}

// Services returns the services whose key starts with prefix (use
// ServicesPrefix for all, AppServicesPrefix for one app), ordered by key.
func (c *Cache) Services(prefix string) []*berthv1.Service {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return underPrefix(c.services, prefix)
}

// underPrefix returns the objects of m whose key starts with prefix,
// ordered by key; the caller holds the lock.
func underPrefix[T any](m map[string]T, prefix string) []T {
	keys := make([]string, 0, len(m))
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]T, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}

// Network returns the network name of namespace.
func (c *Cache) Network(namespace, name string) (*berthv1.Network, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n, ok := c.networks[NetworkKey(namespace, name)]
	return n, ok
}

// Networks returns the networks whose key starts with prefix (use
// NetworksPrefix for all, NamespaceNetworksPrefix for one namespace),
// ordered by key.
func (c *Cache) Networks(prefix string) []*berthv1.Network {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return underPrefix(c.networks, prefix)
}

// Volume returns volume name of namespace.
func (c *Cache) Volume(namespace, name string) (*berthv1.Volume, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.volumes[VolumeKey(namespace, name)]
	return v, ok
}

// Volumes returns the volumes whose key starts with prefix (VolumesPrefix
// for all, NamespaceVolumesPrefix for one namespace), ordered by key.
func (c *Cache) Volumes(prefix string) []*berthv1.Volume {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return underPrefix(c.volumes, prefix)
}

// Secret returns secret name of namespace, sealed.
func (c *Cache) Secret(namespace, name string) (*berthv1.Secret, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s, ok := c.secrets[SecretKey(namespace, name)]
	return s, ok
}

// Secrets returns the secrets whose key starts with prefix, ordered by
// key; they are sealed.
func (c *Cache) Secrets(prefix string) []*berthv1.Secret {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return underPrefix(c.secrets, prefix)
}

// PinFiles points the secret and config references of spec, a service's
// of namespace, at the versions stored now. Only the current version of
// each is kept, so a spec that returns to an older one (a rollback) must
// run the current data rather than name data no node can get.
func (c *Cache) PinFiles(namespace string, spec *berthv1.ServiceSpec) {
	for _, r := range spec.GetSecrets() {
		if s, ok := c.Secret(namespace, r.GetName()); ok {
			r.Version, r.Digest = s.GetVersion(), s.GetDigest()
		}
	}
	for _, r := range spec.GetConfigs() {
		if cf, ok := c.Config(namespace, r.GetName()); ok {
			r.Version, r.Digest = cf.GetVersion(), cf.GetDigest()
		}
	}
}

// Config returns config name of namespace.
func (c *Cache) Config(namespace, name string) (*berthv1.Config, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	cf, ok := c.configs[ConfigKey(namespace, name)]
	return cf, ok
}

// Configs returns the configs whose key starts with prefix, ordered by key.
func (c *Cache) Configs(prefix string) []*berthv1.Config {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return underPrefix(c.configs, prefix)
}

// Task returns the task with id.
func (c *Cache) Task(id string) (*berthv1.Task, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t, ok := c.tasks[id]
	return t, ok
}

// Tasks returns every task.
func (c *Cache) Tasks() []*berthv1.Task {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*berthv1.Task, 0, len(c.tasks))
	for _, t := range c.tasks {
		out = append(out, t)
	}
	return out
}

// ServiceTasks returns the tasks of the service with id serviceID.
func (c *Cache) ServiceTasks(serviceID string) []*berthv1.Task {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return values(c.byService[serviceID])
}

// NodeTasks returns the tasks assigned to node id.
func (c *Cache) NodeTasks(nodeID string) []*berthv1.Task {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return values(c.byNode[nodeID])
}

func values(m map[string]*berthv1.Task) []*berthv1.Task {
	out := make([]*berthv1.Task, 0, len(m))
	for _, t := range m {
		out = append(out, t)
	}
	return out
}

// Settings returns the cluster settings, or the defaults (every field
// unset: spread scheduling, no automatic rebalance) when none are stored.
// It is never nil. Like every object the cache hands out, the result is
// shared and read-only: clone it (proto.Clone) before changing anything.
func (c *Cache) Settings() *berthv1.ClusterSettings {
	if st := c.settings.Load(); st != nil {
		return st
	}
	return &berthv1.ClusterSettings{}
}

// TaskStates counts the tasks by observed state, without a pass over them.
func (c *Cache) TaskStates() map[berthv1.TaskState]int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return maps.Clone(c.states)
}
