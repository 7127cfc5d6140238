package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/internal/metrics/metricstest"
)

func TestCommitsAreTimedByResult(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	tk := task("t1", "s1", "")
	for range 2 {
		var txn store.Txn
		txn.Create(taskKey(tk), tk)
		if _, err := s.Commit(ctx, &txn); err != nil && !errors.Is(err, store.ErrConflict) {
			t.Fatal(err)
		}
	}
	var empty store.Txn
	if _, err := s.Commit(ctx, &empty); err != nil {
		t.Fatal(err)
	}
	got := metricstest.Values(t, s.Collectors()...)
	for _, tt := range []struct {
		series string
		want   float64
	}{
		{`berth_etcd_txn_duration_seconds_count{result="committed"}`, 1},
		{`berth_etcd_txn_duration_seconds_count{result="conflict"}`, 1},
	} {
		if got[tt.series] != tt.want {
			t.Errorf("%s = %v, want %v (an empty transaction reaches no etcd)", tt.series, got[tt.series], tt.want)
		}
	}
}
