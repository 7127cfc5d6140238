// Package keylock serializes work per key: calls for one key run one at a
// time, calls for different keys in parallel.
package keylock

import "sync"

// Locks is a mutex per key, kept only while someone holds or waits for
// it. The zero value is ready to use.
type Locks struct {
	mu sync.Mutex
	m  map[string]*lock
}

type lock struct {
	sync.Mutex
	refs int
}

// Lock locks key and returns its unlock function.
func (l *Locks) Lock(key string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*lock)
	}
	k, ok := l.m[key]
	if !ok {
		k = &lock{}
		l.m[key] = k
	}
	k.refs++
	l.mu.Unlock()

	k.Lock()
	return func() {
		k.Unlock()
		l.mu.Lock()
		k.refs--
		if k.refs == 0 {
			delete(l.m, key)
		}
		l.mu.Unlock()
	}
}
