package dispatcher

import (
	"context"
	"log/slog"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/internal/metrics/metricstest"
)

func TestCollectorsCountTasksAndSessions(t *testing.T) {
	ctx := context.Background()
	s, c := newStoreAndCache(t)
	d := New(Config{Store: s, Cache: c, Log: slog.New(slog.DiscardHandler)})
	running, pending := berthv1.TaskState_TASK_STATE_RUNNING, berthv1.TaskState_TASK_STATE_PENDING
	var txn store.Txn
	for _, tk := range []*berthv1.Task{
		task("t1", "n1", running, 1, running),
		task("t2", "n1", running, 1, running),
		task("t3", "", pending, 1, running),
	} {
		txn.Create(store.TaskKey(tk.Namespace, tk.App, tk.Service, tk.GetMeta().GetId()), tk)
	}
	rev, err := s.Commit(ctx, &txn)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	_, cancel := context.WithCancel(ctx)
	defer cancel()
	d.sessions["n1"] = newSession("n1", context.Background(), cancel)

	got := metricstest.Values(t, d.Collectors()...)
	for _, tt := range []struct {
		series string
		want   float64
	}{
		{`berth_tasks{state="running"}`, 2},
		{`berth_tasks{state="pending"}`, 1},
		{`berth_tasks{state="failed"}`, 0},
		{`berth_agent_sessions`, 1},
	} {
		if v, ok := got[tt.series]; !ok || v != tt.want {
			t.Errorf("%s = %v (reported: %v), want %v", tt.series, v, ok, tt.want)
		}
	}
	if _, ok := got[`berth_tasks{state="unspecified"}`]; ok {
		t.Errorf("the unspecified state is reported")
	}
}
