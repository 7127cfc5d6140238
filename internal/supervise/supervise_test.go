package supervise

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc"
)

func TestGroupReportsTheFirstFailure(t *testing.T) {
	g := New()
	release := make(chan struct{})
	g.Go("quiet", func() error { <-release; return nil })
	g.Go("stopped server", func() error { return grpc.ErrServerStopped })
	g.Go("broken", func() error { return errors.New("boom") })
	err := <-g.Err()
	if err == nil || !strings.Contains(err.Error(), "broken: boom") {
		t.Fatalf("Err = %v, want the named failure", err)
	}
	close(release)
	g.Wait()
	select {
	case err := <-g.Err():
		t.Fatalf("a second error was reported: %v", err)
	default:
	}
}
