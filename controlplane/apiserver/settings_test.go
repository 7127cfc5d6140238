package apiserver

import (
	"context"
	"sync"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

func TestSettings(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	got, err := s.GetSettings(ctx, &berthv1.GetSettingsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Strategy != berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_UNSPECIFIED || got.AutoRebalance {
		t.Fatalf("settings never set are %v, want the defaults", got)
	}
	binpack := berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK
	tests := []struct {
		name   string
		req    *berthv1.UpdateSettingsRequest
		code   codes.Code
		words  []string
		want   *berthv1.ClusterSettings
		writes bool
	}{
		{name: "first write", req: &berthv1.UpdateSettingsRequest{Settings: &berthv1.ClusterSettings{Strategy: binpack, AutoRebalance: true}},
			want: &berthv1.ClusterSettings{Strategy: binpack, AutoRebalance: true}, writes: true},
		{name: "the same again", req: &berthv1.UpdateSettingsRequest{Settings: &berthv1.ClusterSettings{Strategy: binpack, AutoRebalance: true}},
			want: &berthv1.ClusterSettings{Strategy: binpack, AutoRebalance: true}},
		{name: "meta is ignored", req: &berthv1.UpdateSettingsRequest{Settings: &berthv1.ClusterSettings{Meta: &berthv1.Meta{Version: 1}, AutoRebalance: true}},
			want: &berthv1.ClusterSettings{AutoRebalance: true}, writes: true},
		{name: "unknown strategy", req: &berthv1.UpdateSettingsRequest{Settings: &berthv1.ClusterSettings{Strategy: 7}},
			code: codes.InvalidArgument, words: []string{"spread or binpack"}},
		{name: "no settings", req: &berthv1.UpdateSettingsRequest{}, code: codes.InvalidArgument, words: []string{"missing"}},
		{name: "log limits", req: &berthv1.UpdateSettingsRequest{Settings: &berthv1.ClusterSettings{AutoRebalance: true, Logging: &berthv1.LogConfig{MaxSize: 20_000_000, MaxFile: 5}}},
			want: &berthv1.ClusterSettings{AutoRebalance: true, Logging: &berthv1.LogConfig{MaxSize: 20_000_000, MaxFile: 5}}, writes: true},
		{name: "the same log limits again", req: &berthv1.UpdateSettingsRequest{Settings: &berthv1.ClusterSettings{AutoRebalance: true, Logging: &berthv1.LogConfig{MaxSize: 20_000_000, MaxFile: 5}}},
			want: &berthv1.ClusterSettings{AutoRebalance: true, Logging: &berthv1.LogConfig{MaxSize: 20_000_000, MaxFile: 5}}},
		{name: "bad log limits", req: &berthv1.UpdateSettingsRequest{Settings: &berthv1.ClusterSettings{Logging: &berthv1.LogConfig{Driver: "syslog", MaxFile: 1000}}},
			code: codes.InvalidArgument, words: []string{"logging.driver", "syslog", "logging.options.max-file"}},
		{name: "log limits back to the defaults", req: &berthv1.UpdateSettingsRequest{Settings: &berthv1.ClusterSettings{AutoRebalance: true, Logging: &berthv1.LogConfig{}}},
			want: &berthv1.ClusterSettings{AutoRebalance: true}, writes: true},
	}
	for _, tt := range tests {
		before := etcdRevision(t, s)
		got, err := s.UpdateSettings(ctx, tt.req)
		if tt.code != codes.OK {
			wantCode(t, tt.name, err, tt.code, tt.words...)
		} else if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		} else if got.Strategy != tt.want.Strategy || got.AutoRebalance != tt.want.AutoRebalance || !proto.Equal(got.GetLogging(), tt.want.GetLogging()) || got.GetMeta().GetVersion() == 0 {
			t.Errorf("%s: returned %v, want %v with a version", tt.name, got, tt.want)
		}
		if wrote := etcdRevision(t, s) != before; wrote != tt.writes {
			t.Errorf("%s: wrote = %v, want %v", tt.name, wrote, tt.writes)
		}
		if tt.want == nil {
			continue
		}
		read, err := s.GetSettings(ctx, &berthv1.GetSettingsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(read, got) {
			t.Errorf("%s: GetSettings returned %v, UpdateSettings %v", tt.name, read, got)
		}
	}
}

// Writers that race, the first ones while nothing is stored yet, all
// succeed: the losers of each guarded write read again and retry.
func TestUpdateSettingsRaces(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	const writers = 4
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.UpdateSettings(ctx, &berthv1.UpdateSettingsRequest{Settings: &berthv1.ClusterSettings{
				Strategy:      berthv1.SchedulingStrategy(1 + i%2),
				AutoRebalance: i%2 == 0,
			}})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	got, _ := s.GetSettings(ctx, &berthv1.GetSettingsRequest{})
	if got.AutoRebalance != (got.Strategy == berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_SPREAD) {
		t.Fatalf("settings %v mix two writers' values", got)
	}
}
