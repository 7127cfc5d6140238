package scale

import (
	"context"
	"fmt"
	"sync"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// Detection is how the control plane saw the victim pool die.
type Detection struct {
	// Nodes is how many nodes were killed.
	Nodes int
	// Unreachable and Down are, per killed node, the time from the kill
	// to the node's verdict (by the server's clock, StatusSince). A node
	// that went straight to down counts as unreachable then too.
	Unreachable, Down durations
	// Replaced is the time from the kill until no killed node holds a
	// running task and every task runs again.
	Replaced time.Duration
}

// nodeVerdicts follows the nodes' statuses through a Watch, recording
// when each of ids first became unreachable and down.
type nodeVerdicts struct {
	mu          sync.Mutex
	ids         map[string]bool
	unreachable map[string]time.Time
	down        map[string]time.Time
	changed     chan struct{}
}

func (v *nodeVerdicts) note(n *berthv1.Node) {
	id := n.GetMeta().GetId()
	if !v.ids[id] {
		return
	}
	at := time.Now()
	if s := n.GetStatusSince(); s != nil {
		at = s.AsTime()
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	switch n.GetStatus() {
	case berthv1.NodeStatus_NODE_STATUS_UNREACHABLE:
		if _, ok := v.unreachable[id]; !ok {
			v.unreachable[id] = at
		}
	case berthv1.NodeStatus_NODE_STATUS_DOWN:
		if _, ok := v.unreachable[id]; !ok {
			v.unreachable[id] = at
		}
		if _, ok := v.down[id]; !ok {
			v.down[id] = at
		}
	default:
		return
	}
	select {
	case v.changed <- struct{}{}:
	default:
	}
}

func (v *nodeVerdicts) allDown() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.down) == len(v.ids)
}

// watch feeds v from the server's Watch (nodes only) until ctx ends; a
// broken watch starts again from a listing.
func (c *Cluster) watchNodes(ctx context.Context, v *nodeVerdicts, started chan<- struct{}) {
	first := true
	for ctx.Err() == nil {
		// No app has this namespace: the stream carries nodes alone.
		stream, err := c.srv.api.Watch(ctx, &berthv1.WatchRequest{Namespace: "berth-scale-nodes-only"})
		if err == nil {
			_, err = stream.Header()
		}
		if err == nil {
			if first {
				close(started)
				first = false
			}
			if list, err := c.srv.api.ListNodes(ctx, &berthv1.ListNodesRequest{}); err == nil {
				for _, n := range list.GetNodes() {
					v.note(n)
				}
			}
			for {
				ev, err := stream.Recv()
				if err != nil {
					break
				}
				if n := ev.GetNode(); n != nil {
					v.note(n)
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// KillVictims kills the victim pool (frozen with SIGSTOP, as a machine
// dies, then killed once judged) and waits until the
// server has declared each of its nodes down and every task runs again,
// on the live nodes.
func (c *Cluster) KillVictims(ctx context.Context, timeout time.Duration) (*Detection, error) {
	if c.victim == nil {
		return nil, fmt.Errorf("no victim pool: the run was made with no victims")
	}
	_, victims := c.Nodes()
	v := &nodeVerdicts{ids: map[string]bool{}, unreachable: map[string]time.Time{}, down: map[string]time.Time{}, changed: make(chan struct{}, 1)}
	for id := range victims {
		v.ids[id] = true
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	wctx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopWatch()
	started := make(chan struct{})
	wg.Go(func() { c.watchNodes(wctx, v, started) })
	select {
	case <-started:
	case <-ctx.Done():
		return nil, fmt.Errorf("watching the nodes: %w", ctx.Err())
	}

	killed := time.Now()
	c.victim.freeze()
	defer c.victim.kill()
	c.progress("killed %s (%d nodes)", c.victim.name, len(victims))
	for !v.allDown() {
		select {
		case <-v.changed:
		case <-ctx.Done():
			v.mu.Lock()
			unreachable, down := len(v.unreachable), len(v.down)
			v.mu.Unlock()
			return nil, fmt.Errorf("after %s: %d of %d killed nodes unreachable, %d down", timeout, unreachable, len(v.ids), down)
		}
	}
	stopWatch()
	d := &Detection{Nodes: len(victims)}
	v.mu.Lock()
	for id := range v.ids {
		d.Unreachable = append(d.Unreachable, max(v.unreachable[id].Sub(killed), 0))
		d.Down = append(d.Down, max(v.down[id].Sub(killed), 0))
	}
	v.mu.Unlock()
	c.progress("killed nodes unreachable after %s (max %s), down after %s (max %s)",
		d.Unreachable.p50(), d.Unreachable.max(), d.Down.p50(), d.Down.max())

	if err := c.waitVictimsEmpty(ctx, victims); err != nil {
		return nil, err
	}
	if err := c.WaitRunning(ctx, c.cfg.Tasks); err != nil {
		return nil, fmt.Errorf("replacing the killed nodes' tasks: %w", err)
	}
	d.Replaced = time.Since(killed)
	c.progress("every task running again %s after the kill", d.Replaced.Round(time.Millisecond))
	return d, nil
}

// waitVictimsEmpty waits until no killed node holds a running task.
func (c *Cluster) waitVictimsEmpty(ctx context.Context, victims map[string]string) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		left := 0
		for id := range victims {
			resp, err := c.srv.api.ListTasks(ctx, &berthv1.ListTasksRequest{App: App, NodeId: id})
			if err != nil {
				return fmt.Errorf("tasks of killed node %s: %w", victims[id], err)
			}
			for _, t := range resp.GetTasks() {
				if t.GetStatus().GetState() == berthv1.TaskState_TASK_STATE_RUNNING {
					left++
				}
			}
		}
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d tasks still running on killed nodes: %w", left, ctx.Err())
		case <-tick.C:
		}
	}
}

// WaitRunning waits until the server counts n running tasks, for at
// most Config.RunningTimeout.
func (c *Cluster) WaitRunning(ctx context.Context, n int) error {
	deadline, ok := ctx.Deadline()
	timeout := c.cfg.RunningTimeout
	if ok {
		timeout = min(timeout, time.Until(deadline))
	}
	return c.poll(ctx, timeout, func(m metrics) (bool, string) {
		running := int(m.get("berth_tasks", `state="running"`))
		return running == n, fmt.Sprintf("%d of %d tasks running", running, n)
	})
}
