// Package supervise runs the long-lived goroutines of a Berth process
// (server or agent) and reports the first one that fails.
package supervise

import (
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc"
)

// Group owns a set of named goroutines. The zero value is not usable; use
// New.
type Group struct {
	wg   sync.WaitGroup
	errc chan error
}

// New returns an empty group.
func New() *Group { return &Group{errc: make(chan error, 1)} }

// Go runs fn in a goroutine the group owns. A non-nil error other than a
// gRPC server's normal stop is reported on Err, named by name.
func (g *Group) Go(name string, fn func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := fn(); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			select {
			case g.errc <- fmt.Errorf("%s: %w", name, err):
			default: // the first failure is the one that matters
			}
		}
	}()
}

// Err receives the first failure.
func (g *Group) Err() <-chan error { return g.errc }

// Wait blocks until every goroutine has returned.
func (g *Group) Wait() { g.wg.Wait() }
