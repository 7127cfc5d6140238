package keylock

import (
	"sync"
	"testing"
)

// TestLocks: calls for one key never overlap; a second key is not held up
// by the first; no lock is kept once everyone unlocked.
func TestLocks(t *testing.T) {
	var l Locks
	var wg sync.WaitGroup
	inside := map[string]int{}
	var mu sync.Mutex
	for i := range 50 {
		key := []string{"a", "b"}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock := l.Lock(key)
			defer unlock()
			mu.Lock()
			inside[key]++
			n := inside[key]
			mu.Unlock()
			if n != 1 {
				t.Errorf("%d calls hold key %s at once", n, key)
			}
			mu.Lock()
			inside[key]--
			mu.Unlock()
		}()
	}
	wg.Wait()
	unlockA := l.Lock("a")
	unlockB := l.Lock("b") // would block forever if keys shared a lock
	unlockB()
	unlockA()
	if len(l.m) != 0 {
		t.Errorf("%d locks kept after every unlock", len(l.m))
	}
}
