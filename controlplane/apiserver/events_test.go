package apiserver

import (
	"context"
	"slices"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestListEventsFilters(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	base := time.Now().Add(-time.Minute)
	at := func(i int) *timestamppb.Timestamp { return timestamppb.New(base.Add(time.Duration(i) * time.Second)) }
	web := &berthv1.Task{Meta: &berthv1.Meta{Id: "t-web"}, Namespace: "default", App: "shop", Service: "web", Slot: 1, NodeId: "n1"}
	db := &berthv1.Task{Meta: &berthv1.Meta{Id: "t-db"}, Namespace: "default", App: "shop", Service: "db", Slot: 1, NodeId: "n2"}
	other := &berthv1.Task{Meta: &berthv1.Meta{Id: "t-other"}, Namespace: "team", App: "shop", Service: "web", Slot: 1, NodeId: "n1"}
	events := []*berthv1.Event{
		appEvent("default", "shop", "apply", "1"),
		store.TaskEvent(web, "fail", "2", "alpha"),
		store.TaskEvent(db, "fail", "3", "beta"),
		{Kind: store.EventKindNode, ObjectId: "n1", Action: "down", Message: "4"},
		store.TaskEvent(other, "fail", "5", "alpha"),
		store.TaskEvent(web, "replace", "6", "alpha"),
	}
	for i, ev := range events {
		ev.At = at(i + 1)
		s.cfg.Store.RecordEvent(ev)
	}
	if err := s.cfg.Store.FlushEvents(ctx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  *berthv1.ListEventsRequest
		want []string
	}{
		{"everything", &berthv1.ListEventsRequest{AllNamespaces: true}, []string{"1", "2", "3", "4", "5", "6"}},
		{"one namespace and the nodes", &berthv1.ListEventsRequest{}, []string{"1", "2", "3", "4", "6"}},
		{"limit keeps the newest", &berthv1.ListEventsRequest{Limit: 2, AllNamespaces: true}, []string{"5", "6"}},
		{"app in the default namespace", &berthv1.ListEventsRequest{App: "shop"}, []string{"1", "2", "3", "6"}},
		{"app in another namespace", &berthv1.ListEventsRequest{Namespace: "team", App: "shop"}, []string{"5"}},
		{"service", &berthv1.ListEventsRequest{App: "shop", Service: "web"}, []string{"2", "6"}},
		{"task", &berthv1.ListEventsRequest{TaskId: "t-db"}, []string{"3"}},
		{"node, and the tasks on it", &berthv1.ListEventsRequest{NodeId: "n1", AllNamespaces: true}, []string{"2", "4", "5", "6"}},
		{"node and app", &berthv1.ListEventsRequest{NodeId: "n1", App: "shop"}, []string{"2", "6"}},
		{"since", &berthv1.ListEventsRequest{Since: at(4), AllNamespaces: true}, []string{"4", "5", "6"}},
	}
	for _, tt := range tests {
		resp, err := s.ListEvents(ctx, tt.req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var got []string
		for _, ev := range resp.Events {
			got = append(got, ev.Message)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	_, err := s.ListEvents(ctx, &berthv1.ListEventsRequest{Service: "web"})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("a service without its app: got %v, want InvalidArgument", err)
	}
}
