package sweep

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/berthproject/berth/agent/runtime"
)

func TestCollect(t *testing.T) {
	tests := []struct {
		name  string
		known Known
		seen  Observed
		want  Garbage
	}{
		{
			name: "nothing on the node",
			want: Garbage{},
		},
		{
			name:  "everything belongs to running tasks",
			known: Known{Tasks: map[string]bool{"a": true, "b": true}},
			seen:  Observed{Containers: []string{"a", "b"}, Attachments: []string{"a", "b"}},
			want:  Garbage{},
		},
		{
			name:  "a container and its network of an unknown task go together",
			known: Known{Tasks: map[string]bool{"a": true}},
			seen:  Observed{Containers: []string{"z", "a"}, Attachments: []string{"a", "z"}},
			want:  Garbage{Containers: []string{"z"}},
		},
		{
			name:  "an ended task keeps its container, not its network",
			known: Known{Tasks: map[string]bool{"done": false}},
			seen:  Observed{Containers: []string{"done"}, Attachments: []string{"done"}},
			want:  Garbage{Attachments: []string{"done"}},
		},
		{
			name:  "a namespace without a container is detached",
			known: Known{Tasks: map[string]bool{"a": true}},
			seen:  Observed{Containers: []string{"a"}, Attachments: []string{"a", "crashed-1", "crashed-0"}},
			want:  Garbage{Attachments: []string{"crashed-0", "crashed-1"}},
		},
		{
			name:  "objects of a task in flight are left to its runner",
			known: Known{Tasks: map[string]bool{"ended": false}, InFlight: map[string]bool{"new": true, "ended": true}},
			seen:  Observed{Containers: []string{"new", "ended"}, Attachments: []string{"new", "ended"}},
			want:  Garbage{},
		},
		{
			name:  "a task the worker knows but has not started is kept",
			known: Known{Tasks: map[string]bool{"pending": true}},
			seen:  Observed{Attachments: []string{"pending"}},
			want:  Garbage{},
		},
		{
			name:  "duplicates are removed once",
			known: Known{},
			seen:  Observed{Containers: []string{"x", "x"}, Attachments: []string{"y", "y", "x"}},
			want:  Garbage{Containers: []string{"x"}, Attachments: []string{"y"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Collect(tt.known, tt.seen)
			if !slices.Equal(got.Containers, tt.want.Containers) || !slices.Equal(got.Attachments, tt.want.Attachments) {
				t.Fatalf("Collect = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// fakeNode is the worker, runtime and network of a node in memory.
type fakeNode struct {
	mu          sync.Mutex
	known       Known
	containers  map[string]bool
	attachments map[string]bool
	failRemove  string
	// onList runs after the containers are listed: a task assigned
	// meanwhile.
	onList func()
}

func (f *fakeNode) Known() Known {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.known
}

func (f *fakeNode) List(ctx context.Context) ([]runtime.Status, error) {
	f.mu.Lock()
	var out []runtime.Status
	for id := range f.containers {
		out = append(out, runtime.Status{ID: id})
	}
	onList := f.onList
	f.mu.Unlock()
	if onList != nil {
		onList()
	}
	return out, nil
}

func (f *fakeNode) Remove(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id == f.failRemove {
		return errors.New("containerd says no")
	}
	delete(f.containers, id)
	delete(f.attachments, id)
	return nil
}

func (f *fakeNode) Attached() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for id := range f.attachments {
		out = append(out, id)
	}
	return out, nil
}

func (f *fakeNode) Detach(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.attachments, id)
	return nil
}

func set(ids ...string) map[string]bool {
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func TestOnceRemovesGarbageThroughItsOwners(t *testing.T) {
	node := &fakeNode{
		known:       Known{Tasks: map[string]bool{"run": true, "ended": false}},
		containers:  set("run", "ended", "lost", "broken"),
		attachments: set("run", "ended", "lost", "orphan-ns"),
		failRemove:  "broken",
	}
	s := New(Config{Tasks: node, Containers: node, Network: node, Log: slog.New(slog.DiscardHandler)})
	done, err := s.Once(context.Background())
	if err == nil {
		t.Fatal("a failed removal was not reported")
	}
	if !slices.Equal(done.Containers, []string{"lost"}) || !slices.Equal(done.Attachments, []string{"ended", "orphan-ns"}) {
		t.Fatalf("removed %+v, want container lost and networks ended, orphan-ns", done)
	}
	if want := set("run", "ended", "broken"); !maps.Equal(node.containers, want) {
		t.Fatalf("containers left %v, want %v", node.containers, want)
	}
	if want := set("run"); !maps.Equal(node.attachments, want) {
		t.Fatalf("attachments left %v, want %v", node.attachments, want)
	}
	// A second sweep finds only what failed.
	node.failRemove = ""
	done, err = s.Once(context.Background())
	if err != nil || !slices.Equal(done.Containers, []string{"broken"}) || len(done.Attachments) != 0 {
		t.Fatalf("second sweep removed %+v (%v), want only container broken", done, err)
	}
}

// A task assigned while the sweep lists the node is known by the time
// the sweep decides, so its new container stays.
func TestOnceReadsTheWorkerAfterTheNode(t *testing.T) {
	node := &fakeNode{known: Known{Tasks: map[string]bool{}}, containers: set("new"), attachments: set("new")}
	node.onList = func() {
		node.mu.Lock()
		node.known = Known{Tasks: map[string]bool{"new": true}}
		node.mu.Unlock()
	}
	s := New(Config{Tasks: node, Containers: node, Network: node, Log: slog.New(slog.DiscardHandler)})
	done, err := s.Once(context.Background())
	if err != nil || !done.Empty() {
		t.Fatalf("removed %+v (%v), want nothing", done, err)
	}
}
