package apiserver

import (
	"context"
	"errors"
	"strings"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/api/validation"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// stopSlack is how long past the longest stop grace period of an app's
// services `delete --volumes` waits for its tasks to stop: time for the
// orchestrator to tell the agents, and for them to report.
const stopSlack = 10 * time.Second

// appVolumes are the volumes app owns in namespace ns: those its Compose
// file defines, not the external ones it only uses.
func (s *Server) appVolumes(ns, app string) []*berthv1.Volume {
	var out []*berthv1.Volume
	for _, v := range s.cfg.Cache.Volumes(store.NamespaceVolumesPrefix(ns)) {
		if v.GetApp() == app {
			out = append(out, v)
		}
	}
	return out
}

// stopWait is how long deleting app's volumes waits for its tasks to
// stop: the longest stop grace period of services, plus stopSlack.
func stopWait(services []*berthv1.Service) time.Duration {
	longest := validation.DefaultStopGracePeriod
	for _, svc := range services {
		if g := svc.GetSpec().GetStopGracePeriod(); g != nil && g.AsDuration() > longest {
			longest = g.AsDuration()
		}
	}
	return longest + stopSlack
}

// deleteAppVolumes runs after the services of app were removed: it waits
// until none of the app's tasks runs (at most wait), then removes the
// app's own volumes, data and record, listing them in resp. An error
// names the volumes left and why.
func (s *Server) deleteAppVolumes(ctx context.Context, ns, app string, wait time.Duration, resp *berthv1.DeleteAppResponse) (*berthv1.DeleteAppResponse, error) {
	deadline := time.Now().Add(wait)
	if err := s.waitAppStopped(ctx, ns, app, wait); err != nil {
		return nil, err
	}
	var left []string
	for _, v := range s.appVolumes(ns, app) {
		if err := s.removeVolumeWhenFree(ctx, v, deadline); err != nil {
			if ctx.Err() != nil {
				return nil, status.FromContextError(ctx.Err()).Err()
			}
			left = append(left, status.Convert(err).Message())
			continue
		}
		resp.RemovedVolumes = append(resp.RemovedVolumes, v.GetName())
	}
	if len(left) > 0 {
		var done []string
		if len(resp.RemovedServices) > 0 {
			done = append(done, "its services were removed")
		}
		if len(resp.RemovedVolumes) > 0 {
			done = append(done, "volumes "+strings.Join(resp.RemovedVolumes, ", ")+" were removed")
		}
		what := ""
		if len(done) > 0 {
			what = strings.Join(done, " and ") + ", but "
		}
		return nil, status.Errorf(codes.FailedPrecondition, "app %s: %s%d of its volumes are left:\n  %s\nremove them with berth volume rm NAME once their nodes are back (--force gives up their data)",
			app, what, len(left), strings.Join(left, "\n  "))
	}
	return resp, nil
}

// busyRetry is how often a volume whose node still runs a container on it
// is asked for again while an app's tasks stop.
const busyRetry = 200 * time.Millisecond

// removeVolumeWhenFree removes volume v, asking its node again while a
// container still uses it (the task records of a deleted app go before
// their containers have stopped), until deadline.
func (s *Server) removeVolumeWhenFree(ctx context.Context, v *berthv1.Volume, deadline time.Time) error {
	for {
		err := s.removeVolume(ctx, v, false)
		var busy *volumeBusyError
		if !errors.As(err, &busy) || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(busyRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return status.FromContextError(ctx.Err()).Err()
		case <-t.C:
		}
	}
}

// waitAppStopped waits until no task of app runs or is placed on a node
// that can stop it, or until wait has passed; then the volumes' nodes
// refuse to remove what a container still uses.
func (s *Server) waitAppStopped(ctx context.Context, ns, app string, wait time.Duration) error {
	sub := s.cfg.Cache.Subscribe()
	defer s.cfg.Cache.Unsubscribe(sub)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for s.appTasksPlaced(ns, app) {
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-deadline.C:
			s.log.Warn("delete --volumes: tasks still placed after the wait", "namespace", ns, "app", app, "wait", wait)
			return nil
		case <-sub.Ready():
			sub.Drain()
		}
	}
	return nil
}

// appTasksPlaced reports whether a task of app is still live on a node
// that is not down (a down node's tasks are forgotten, not stopped).
func (s *Server) appTasksPlaced(ns, app string) bool {
	for _, t := range s.cfg.Cache.Tasks() {
		if t.GetNamespace() != ns || t.GetApp() != app || !taskstate.Live(t) || t.GetStatus().GetState() < berthv1.TaskState_TASK_STATE_ASSIGNED {
			continue
		}
		if n, ok := s.cfg.Cache.Node(t.GetNodeId()); ok && n.GetStatus() != berthv1.NodeStatus_NODE_STATUS_DOWN {
			return true
		}
	}
	return false
}
