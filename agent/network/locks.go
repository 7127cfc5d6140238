package network

import "sync"

// idLocks serializes the calls for one id while calls for different ids
// run in parallel.
type idLocks struct {
	mu sync.Mutex
	m  map[string]*idLock
}

type idLock struct {
	sync.Mutex
	refs int
}

// lock locks id and returns its unlock function.
func (l *idLocks) lock(id string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*idLock)
	}
	k, ok := l.m[id]
	if !ok {
		k = &idLock{}
		l.m[id] = k
	}
	k.refs++
	l.mu.Unlock()

	k.Lock()
	return func() {
		k.Unlock()
		l.mu.Lock()
		k.refs--
		if k.refs == 0 {
			delete(l.m, id)
		}
		l.mu.Unlock()
	}
}
