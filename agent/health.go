package agent

import (
	"context"
	"fmt"

	"github.com/berthproject/berth/internal/metrics"
)

// registerHealth adds the agent's checks to h (nil adds none). Live: the
// worker, which every task's state goes through, answers. Ready: the
// session with the control plane is up, and containerd answers.
func (a *Agent) registerHealth(h *metrics.Health) {
	if h == nil {
		return
	}
	h.Live("worker", func(context.Context) error {
		a.worker.Statuses() // takes the worker's lock: a wedged worker holds it
		return nil
	})
	h.Ready("session", func(context.Context) error { return a.session.Up() })
	if p, ok := a.rt.(pinger); ok {
		h.Ready("containerd", func(ctx context.Context) error {
			if err := p.Ping(ctx); err != nil {
				return fmt.Errorf("containerd does not answer: %w", err)
			}
			return nil
		})
	}
}
