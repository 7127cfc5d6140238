package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/berthproject/berth/agent/health"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// healthReport is a change of health seen by a task's monitor.
type healthReport struct {
	health berthv1.Health
	detail string
}

// healthConfig resolves the health check of a task's container: the
// service's, else its image's; ok is false when it has none.
func (r *runner) healthConfig(ctx context.Context, spec *berthv1.ServiceSpec) (cfg health.Config, ok bool) {
	var fromImage *berthv1.HealthCheck
	if len(spec.GetHealthcheck().GetTest()) == 0 && !spec.GetHealthcheck().GetDisable() {
		var err error
		if fromImage, err = r.w.rt.ImageHealthcheck(ctx, spec.GetImage()); err != nil {
			r.w.log.Warn("reading the image's health check", "task", r.id, "image", spec.GetImage(), "err", err)
		}
	}
	cfg, ok, err := health.Resolve(spec.GetHealthcheck(), fromImage)
	if err != nil {
		r.w.log.Warn("health check ignored", "task", r.id, "err", err)
		return health.Config{}, false
	}
	return cfg, ok
}

// startHealth starts the health monitor of a running container with cfg.
// The monitor only sends reports; the runner acts on them.
func (r *runner) startHealth(ctx context.Context, cfg health.Config, address string) {
	r.stopHealth()
	hctx, cancel := context.WithCancel(ctx)
	r.cancelHealth = cancel
	target := health.Target{
		Address: address,
		Exec: func(ctx context.Context, cmd []string) (int, []byte, error) {
			res, err := r.w.rt.Exec(ctx, r.id, cmd)
			return res.ExitCode, res.Output, err
		},
	}
	r.w.wg.Add(1)
	go func() {
		defer r.w.wg.Done()
		health.Monitor(hctx, cfg, target, time.Now, func(h berthv1.Health, detail string) {
			select {
			case r.health <- healthReport{health: h, detail: detail}:
			case <-hctx.Done():
			}
		})
	}()
}

// stopHealth ends the health monitor, if one runs.
func (r *runner) stopHealth() {
	if r.cancelHealth != nil {
		r.cancelHealth()
		r.cancelHealth = nil
	}
}

// healthChanged records a new health; an unhealthy container is stopped
// and its task fails, for the restart policy to replace.
func (r *runner) healthChanged(ctx context.Context, task *berthv1.Task, hr healthReport) {
	if r.observed != berthv1.TaskState_TASK_STATE_RUNNING {
		return
	}
	if hr.health != berthv1.Health_HEALTH_UNHEALTHY {
		r.set(berthv1.TaskState_TASK_STATE_RUNNING, func(st *berthv1.TaskStatus) { st.Health = hr.health })
		return
	}
	r.stopHealth()
	// The failure is reported before the container is stopped, so that its
	// replacement does not wait out the stop grace period.
	r.exits = nil
	r.set(berthv1.TaskState_TASK_STATE_FAILED, func(st *berthv1.TaskStatus) {
		st.Health = berthv1.Health_HEALTH_UNHEALTHY
		st.Err = fmt.Sprintf("unhealthy: %s", hr.detail)
	})
	if err := r.stopContainer(ctx, task, 0); err != nil {
		r.w.log.Warn("stopping an unhealthy container", "task", r.id, "err", err)
	}
}
