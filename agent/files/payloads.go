package files

import (
	"os"
	"sync"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// Key names one version of a secret or config.
type Key struct {
	Secret    bool
	Namespace string
	Name      string
	Version   uint64
}

// Payloads keeps in memory the data of the secrets and configs that the
// node's assigned tasks use: what the assignments deliver is kept while an
// assigned task names it, and dropped once none does.
type Payloads struct {
	mu    sync.Mutex
	data  map[Key][]byte
	tasks map[string][]Key // the versions each assigned task names
}

// NewPayloads returns an empty store.
func NewPayloads() *Payloads {
	return &Payloads{data: map[Key][]byte{}, tasks: map[string][]Key{}}
}

// Apply takes an assignments message: it keeps the data it delivers,
// follows which tasks are assigned (a full set replaces them all; else its
// tasks are added or replaced and its removed ones dropped), then drops
// the versions no assigned task names any more. Call it before the worker
// sees the same message, so the tasks find their data.
func (p *Payloads) Apply(a *berthv1.Assignments) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range a.GetFiles() {
		p.data[Key{Secret: f.GetSecret(), Namespace: f.GetNamespace(), Name: f.GetName(), Version: f.GetVersion()}] = f.GetData()
	}
	if a.GetFull() {
		clear(p.tasks)
	}
	for _, t := range a.GetTasks() {
		p.tasks[t.GetMeta().GetId()] = keysOf(t)
	}
	for _, id := range a.GetRemoved() {
		delete(p.tasks, id)
	}
	used := map[Key]bool{}
	for _, keys := range p.tasks {
		for _, k := range keys {
			used[k] = true
		}
	}
	for k := range p.data {
		if !used[k] {
			delete(p.data, k)
		}
	}
}

// keysOf lists the versions task t names.
func keysOf(t *berthv1.Task) []Key {
	spec := t.GetSpec()
	keys := make([]Key, 0, len(spec.GetSecrets())+len(spec.GetConfigs()))
	for _, r := range spec.GetSecrets() {
		keys = append(keys, Key{Secret: true, Namespace: t.GetNamespace(), Name: r.GetName(), Version: r.GetVersion()})
	}
	for _, r := range spec.GetConfigs() {
		keys = append(keys, Key{Namespace: t.GetNamespace(), Name: r.GetName(), Version: r.GetVersion()})
	}
	return keys
}

// Files returns the files of task t's secrets and configs, with their
// targets, owners and modes resolved. A version this node does not hold
// is an error that wraps ErrNotDelivered. The data is shared: callers
// must not change it.
func (p *Payloads) Files(t *berthv1.Task) ([]File, error) {
	spec := t.GetSpec()
	if len(spec.GetSecrets())+len(spec.GetConfigs()) == 0 {
		return nil, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]File, 0, len(spec.GetSecrets())+len(spec.GetConfigs()))
	add := func(secret bool, r *berthv1.FileReference) error {
		data, ok := p.data[Key{Secret: secret, Namespace: t.GetNamespace(), Name: r.GetName(), Version: r.GetVersion()}]
		if !ok {
			return notDelivered(secret, r.GetName(), r.GetVersion())
		}
		mode := os.FileMode(r.GetMode()).Perm()
		if r.GetMode() == 0 {
			mode = DefaultMode
		}
		out = append(out, File{
			Target: Target(secret, r.GetName(), r.GetTarget()),
			Data:   data, UID: r.GetUid(), GID: r.GetGid(), Mode: mode,
			Secret: secret, Name: r.GetName(),
		})
		return nil
	}
	for _, r := range spec.GetSecrets() {
		if err := add(true, r); err != nil {
			return nil, err
		}
	}
	for _, r := range spec.GetConfigs() {
		if err := add(false, r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Len returns how many versions the store holds.
func (p *Payloads) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.data)
}
