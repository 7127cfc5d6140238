package store_test

import (
	"context"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
)

// nextSettingsEvent drains sub until a KindSettings event arrives, or fails
// the test after a deadline.
func nextSettingsEvent(t *testing.T, sub *store.Subscription) store.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case <-sub.Ready():
			evs, overflowed := sub.Drain()
			if overflowed {
				t.Fatal("subscription overflowed")
			}
			for _, ev := range evs {
				if ev.Kind == store.KindSettings {
					return ev
				}
			}
		case <-deadline:
			t.Fatal("no settings event arrived")
		}
	}
}

func TestCacheFollowsSettings(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	// Settings written before the cache starts are loaded with the rest.
	var txn store.Txn
	txn.Create(store.SettingsKey, &berthv1.ClusterSettings{Meta: &berthv1.Meta{}, AutoRebalance: true})
	if _, err := s.Commit(ctx, &txn); err != nil {
		t.Fatal(err)
	}
	c := storetest.NewCache(t, s)
	loaded := c.Settings()
	if !loaded.AutoRebalance || loaded.GetMeta().GetVersion() == 0 {
		t.Fatalf("loaded settings = %v, want auto_rebalance with a version", loaded)
	}
	sub := c.Subscribe()
	defer c.Unsubscribe(sub)

	steps := []struct {
		name     string
		write    func(*store.Txn, *berthv1.ClusterSettings)
		action   store.Action
		strategy berthv1.SchedulingStrategy
		auto     bool
	}{
		{"update", func(txn *store.Txn, cur *berthv1.ClusterSettings) {
			txn.Update(store.SettingsKey, &berthv1.ClusterSettings{Meta: cur.GetMeta(), Strategy: berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK})
		}, store.ActionPut, berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK, false},
		{"delete means defaults", func(txn *store.Txn, cur *berthv1.ClusterSettings) {
			txn.Delete(store.SettingsKey, cur.GetMeta().GetVersion())
		}, store.ActionDelete, berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_UNSPECIFIED, false},
	}
	for _, st := range steps {
		var txn store.Txn
		st.write(&txn, c.Settings())
		rev, err := s.Commit(ctx, &txn)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		ev := nextSettingsEvent(t, sub)
		if ev.Action != st.action || ev.Revision != rev {
			t.Errorf("%s: event %+v, want action %v at revision %d", st.name, ev, st.action, rev)
		}
		if _, ok := ev.Object.(*berthv1.ClusterSettings); !ok {
			t.Errorf("%s: event carries %T, want *berthv1.ClusterSettings", st.name, ev.Object)
		}
		got := c.Settings()
		if got == nil || got.Strategy != st.strategy || got.AutoRebalance != st.auto {
			t.Errorf("%s: settings = %v, want strategy %v auto_rebalance %v", st.name, got, st.strategy, st.auto)
		}
	}
}

func TestStoreRevisionMovesWithWrites(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	before, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tk := task("t1", "s1", "")
	var txn store.Txn
	txn.Create(taskKey(tk), tk)
	rev, err := s.Commit(ctx, &txn)
	if err != nil {
		t.Fatal(err)
	}
	after, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after != rev || after <= before {
		t.Fatalf("revision %d before and %d after a write at %d", before, after, rev)
	}
}
