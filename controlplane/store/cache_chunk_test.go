package store

import (
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestChunkEnd checks that the cache lets go of its lock only between
// revisions: a transaction's writes are seen all at once or not at all.
func TestChunkEnd(t *testing.T) {
	// Revisions 1 (3 events), 2 (4 events), 3 (1 event).
	var evs []*clientv3.Event
	for _, r := range []int64{1, 1, 1, 2, 2, 2, 2, 3} {
		evs = append(evs, &clientv3.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{ModRevision: r}})
	}
	for _, tc := range []struct {
		start, n, want int
	}{
		{0, 2, 3}, // inside revision 1: to its end
		{0, 3, 3}, // at its end
		{3, 1, 7}, // all of revision 2
		{3, 5, 8}, // past the end: to the end
		{7, 2, 8},
		{0, 100, 8},
	} {
		if got := chunkEnd(evs, tc.start, tc.n); got != tc.want {
			t.Errorf("chunkEnd(start %d, n %d) = %d, want %d", tc.start, tc.n, got, tc.want)
		}
	}
}
