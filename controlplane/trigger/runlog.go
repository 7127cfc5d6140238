package trigger

import (
	"strings"
	"sync"
)

// MaxLogBytes bounds a run's stored log: past it, the oldest lines go.
const MaxLogBytes = 64 << 10

// runLog is a run's log as it is written: whole lines, the newest
// MaxLogBytes of them kept. Safe for concurrent use.
type runLog struct {
	mu        sync.Mutex
	lines     []string
	size      int
	truncated bool
	changed   bool
}

// add appends text, one entry per line.
func (l *runLog) add(text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		l.lines = append(l.lines, line)
		l.size += len(line) + 1
	}
	for l.size > MaxLogBytes && len(l.lines) > 0 {
		l.size -= len(l.lines[0]) + 1
		l.lines = l.lines[1:]
		l.truncated = true
	}
	l.changed = true
}

// text returns the log, and whether it changed since the last call.
func (l *runLog) text() (text string, truncated, changed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	changed, l.changed = l.changed, false
	if len(l.lines) == 0 {
		return "", l.truncated, changed
	}
	return strings.Join(l.lines, "\n") + "\n", l.truncated, changed
}
