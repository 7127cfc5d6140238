package apiserver

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Logs streams the output of the matching tasks' containers, asking each
// node that holds some of them. Following a service (or an app), it also
// follows the tasks that start after the call began, such as the
// replacement of a failed one, until the client goes away or the service
// is removed.
func (s *Server) Logs(req *berthv1.LogsRequest, stream berthv1.ClusterService_LogsServer) error {
	ns := namespaceOf(req.Namespace)
	matches := func(t *berthv1.Task) bool {
		if t.NodeId == "" {
			return false
		}
		if req.TaskId != "" {
			// Only in the namespace the caller was let into.
			return t.Namespace == ns && strings.HasPrefix(t.GetMeta().GetId(), req.TaskId)
		}
		return t.Namespace == ns && t.App == req.App && (req.Service == "" || t.Service == req.Service)
	}
	followNew := req.Follow && req.TaskId == ""
	var sub *store.Subscription
	if followNew {
		// Subscribed before the cache is read: a task that starts between
		// the two arrives through the subscription.
		sub = s.cfg.Cache.Subscribe()
		defer s.cfg.Cache.Unsubscribe(sub)
	}
	var first []*berthv1.Task
	for _, t := range s.cfg.Cache.Tasks() {
		if matches(t) && t.GetStatus().GetState() >= berthv1.TaskState_TASK_STATE_STARTING {
			first = append(first, t)
		}
	}
	if len(first) == 0 && !(followNew && s.serviceExists(ns, req.App, req.Service)) {
		what := req.App + "/" + req.Service
		if req.Service == "" {
			what = "app " + req.App
		}
		if req.TaskId != "" {
			what = "task " + req.TaskId
		}
		return status.Errorf(codes.NotFound, "no containers of %s have started; `berth ps -a` shows its tasks", what)
	}

	ctx := stream.Context()
	f := &logFanIn{s: s, stream: stream, follow: req.Follow, since: req.Since, until: req.Until, opened: map[string]bool{}, errs: make(chan error, 1)}
	byNode := map[string][]*berthv1.Task{}
	for _, t := range first {
		byNode[t.NodeId] = append(byNode[t.NodeId], t)
	}
	for nodeID, tasks := range byNode {
		f.open(ctx, nodeID, tasks, req.Tail)
	}
	if followNew {
		f.followNew(ctx, sub, matches, func() bool { return s.serviceExists(ns, req.App, req.Service) })
	}
	f.wg.Wait()
	close(f.errs)
	if err := <-f.errs; err != nil && ctx.Err() == nil {
		return status.Errorf(codes.Unavailable, "reading logs: %v", err)
	}
	return nil
}

// serviceExists reports whether the service (the app, when service is
// empty) is in the cache.
func (s *Server) serviceExists(ns, app, service string) bool {
	if service == "" {
		return len(s.cfg.Cache.Services(store.AppServicesPrefix(ns, app))) > 0
	}
	_, ok := s.cfg.Cache.Service(store.ServiceKey(ns, app, service))
	return ok
}

// logFanIn merges the log streams of several nodes into one client stream.
type logFanIn struct {
	s      *Server
	stream berthv1.ClusterService_LogsServer
	follow bool
	// since, when set, keeps the lines written from then on.
	since *timestamppb.Timestamp
	// until, when set, keeps the lines written until then.
	until *timestamppb.Timestamp

	sendMu sync.Mutex
	wg     sync.WaitGroup
	opened map[string]bool // task ids whose logs are open; the caller's goroutine only
	// errs keeps the first node error.
	errs chan error
}

// open streams the logs of tasks, all on node nodeID, from their last
// tail lines (all when tail < 0).
func (f *logFanIn) open(ctx context.Context, nodeID string, tasks []*berthv1.Task, tail int64) {
	n, ok := f.s.cfg.Cache.Node(nodeID)
	if !ok {
		return
	}
	info := make(map[string]*berthv1.Task, len(tasks))
	ids := make([]string, 0, len(tasks))
	for _, t := range tasks {
		id := t.GetMeta().GetId()
		f.opened[id] = true
		info[id] = t
		ids = append(ids, id)
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		if err := f.relay(ctx, n, ids, tail, info); err != nil {
			if ctx.Err() == nil {
				f.s.log.Warn("reading a node's logs", "node", n.Name, "tasks", ids, "err", err)
			}
			select {
			case f.errs <- err:
			default:
			}
		}
	}()
}

// relay copies one node's log stream to the client.
func (f *logFanIn) relay(ctx context.Context, n *berthv1.Node, ids []string, tail int64, info map[string]*berthv1.Task) error {
	nodeID := n.GetMeta().GetId()
	cli, err := f.s.cfg.Nodes.Client(n)
	if err != nil {
		return err
	}
	logs, err := cli.Logs(ctx, &berthv1.NodeLogsRequest{TaskIds: ids, Follow: f.follow, Tail: tail, Since: f.since, Until: f.until})
	if err != nil {
		return err
	}
	for {
		entry, err := logs.Recv()
		if err != nil {
			if status.Code(err) == codes.Canceled || errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		entry.NodeId = nodeID
		if t := info[entry.TaskId]; t != nil {
			entry.Slot, entry.Service = t.Slot, t.Service
		}
		f.sendMu.Lock()
		err = f.stream.Send(entry)
		f.sendMu.Unlock()
		if err != nil {
			return err
		}
	}
}

// followNew opens the logs of each matching task that starts running,
// until ctx ends or exists reports the service gone. A new task's output
// is shown whole: all of it is news.
func (f *logFanIn) followNew(ctx context.Context, sub *store.Subscription, matches func(*berthv1.Task) bool, exists func() bool) {
	consider := func(t *berthv1.Task) {
		// Running, not just starting: by then its container and its
		// output exist on the node.
		if f.opened[t.GetMeta().GetId()] || !matches(t) || t.GetStatus().GetState() < berthv1.TaskState_TASK_STATE_RUNNING {
			return
		}
		f.open(ctx, t.NodeId, []*berthv1.Task{t}, -1)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-sub.Ready():
		}
		events, overflowed := sub.Drain()
		rescan := overflowed
		for _, ev := range events {
			switch {
			case ev.Kind == store.KindResync:
				rescan = true
			case ev.Kind == store.KindTask && ev.Action == store.ActionPut:
				if t, ok := ev.Object.(*berthv1.Task); ok {
					consider(t)
				}
			}
		}
		if rescan {
			for _, t := range f.s.cfg.Cache.Tasks() {
				consider(t)
			}
		}
		if !exists() {
			return // removed: its tasks' streams end as their containers stop
		}
	}
}
