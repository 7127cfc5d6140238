package apiserver

import (
	"context"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	// defaultEventLimit is how many events ListEvents returns when the
	// request names no limit; maxEventLimit caps what it may ask for.
	defaultEventLimit = 100
	maxEventLimit     = 10000
)

// ListEvents returns the newest events that match the request's filters,
// oldest first.
func (s *Server) ListEvents(ctx context.Context, req *berthv1.ListEventsRequest) (*berthv1.ListEventsResponse, error) {
	since, limit, err := eventRange(req)
	if err != nil {
		return nil, err
	}
	events, err := s.cfg.Store.Events(ctx, since, limit, eventFilter(ctx, req))
	if err != nil {
		return nil, storeError(err)
	}
	return &berthv1.ListEventsResponse{Events: events}, nil
}

// eventRange checks req and returns the time and count that bound the
// history it asks for.
func eventRange(req *berthv1.ListEventsRequest) (since time.Time, limit int, err error) {
	if req.Service != "" && req.App == "" {
		return since, 0, status.Errorf(codes.InvalidArgument, "events of service %q: name its app too (APP/SERVICE)", req.Service)
	}
	limit = int(req.Limit)
	if limit == 0 {
		limit = defaultEventLimit
	}
	limit = min(limit, maxEventLimit)
	if req.Since != nil {
		since = req.Since.AsTime()
	}
	return since, limit, nil
}

// eventFilter is what an event must match to answer req: it is of the
// namespace asked for (with all_namespaces, of one the caller may see) or
// of none (nodes, the cluster), and every filter set holds, matched on the
// event's object or on its attributes (a task's events name its app,
// service and node).
func eventFilter(ctx context.Context, req *berthv1.ListEventsRequest) func(*berthv1.Event) bool {
	sc := listScope(ctx, req.Namespace, req.AllNamespaces)
	ns := namespaceOf(req.Namespace)
	return func(ev *berthv1.Event) bool {
		if !sc.hasEvent(ev) {
			return false
		}
		attrs := ev.GetAttributes()
		if req.App != "" {
			own := ev.Kind == store.EventKindApp && ev.ObjectId == ns+"/"+req.App
			if !own && (attrs[store.AttrNamespace] != ns || attrs[store.AttrApp] != req.App) {
				return false
			}
			if req.Service != "" && attrs[store.AttrService] != req.Service {
				return false
			}
		}
		if req.TaskId != "" && !about(ev, store.EventKindTask, store.AttrTask, req.TaskId) {
			return false
		}
		if req.NodeId != "" && !about(ev, store.EventKindNode, store.AttrNode, req.NodeId) {
			return false
		}
		return true
	}
}

// about reports whether ev is about the object of kind with id: it is the
// event's object, or the event's attribute attr names it.
func about(ev *berthv1.Event, kind, attr, id string) bool {
	return (ev.Kind == kind && ev.ObjectId == id) || ev.GetAttributes()[attr] == id
}

// appEvent is an event about an app, with the attributes that find it.
func appEvent(ns, app, action, message string) *berthv1.Event {
	return &berthv1.Event{
		Kind: store.EventKindApp, ObjectId: ns + "/" + app, Action: action, Message: message,
		Attributes: map[string]string{store.AttrNamespace: ns, store.AttrApp: app},
	}
}
