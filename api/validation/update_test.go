package validation

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestDefaultUpdateConfig(t *testing.T) {
	want := &berthv1.UpdateConfig{
		Parallelism:   1,
		Delay:         durationpb.New(0),
		FailureAction: berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE,
		Monitor:       durationpb.New(5 * time.Second),
		Order:         berthv1.UpdateOrder_UPDATE_ORDER_STOP_FIRST,
	}
	if got := DefaultUpdateConfig(); !proto.Equal(got, want) {
		t.Errorf("DefaultUpdateConfig() = %v, want %v", got, want)
	}
	// Each call returns its own config, free to change.
	DefaultUpdateConfig().Parallelism = 9
	if got := DefaultUpdateConfig(); got.GetParallelism() != 1 {
		t.Errorf("DefaultUpdateConfig() changed to %v", got)
	}
}

func TestNormalizeUpdateConfigs(t *testing.T) {
	tests := []struct {
		name string
		in   *berthv1.UpdateConfig
		want *berthv1.UpdateConfig
	}{
		{name: "unset stays unset", in: nil, want: nil},
		{name: "empty gets defaults but all at once", in: &berthv1.UpdateConfig{}, want: &berthv1.UpdateConfig{
			Delay:         durationpb.New(0),
			FailureAction: berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE,
			Monitor:       durationpb.New(5 * time.Second),
			Order:         berthv1.UpdateOrder_UPDATE_ORDER_STOP_FIRST,
		}},
		{name: "set values are kept, zero monitor too", in: &berthv1.UpdateConfig{
			Parallelism:     3,
			Delay:           durationpb.New(time.Second),
			FailureAction:   berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_CONTINUE,
			Monitor:         durationpb.New(0),
			MaxFailureRatio: 0.5,
			Order:           berthv1.UpdateOrder_UPDATE_ORDER_START_FIRST,
		}, want: &berthv1.UpdateConfig{
			Parallelism:     3,
			Delay:           durationpb.New(time.Second),
			FailureAction:   berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_CONTINUE,
			Monitor:         durationpb.New(0),
			MaxFailureRatio: 0.5,
			Order:           berthv1.UpdateOrder_UPDATE_ORDER_START_FIRST,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := &berthv1.ServiceSpec{
				UpdateConfig:   proto.Clone(tt.in).(*berthv1.UpdateConfig),
				RollbackConfig: proto.Clone(tt.in).(*berthv1.UpdateConfig),
			}
			Normalize(spec)
			if !proto.Equal(spec.GetUpdateConfig(), tt.want) || !proto.Equal(spec.GetRollbackConfig(), tt.want) {
				t.Errorf("Normalize() = update %v, rollback %v; want %v", spec.GetUpdateConfig(), spec.GetRollbackConfig(), tt.want)
			}
			if tt.want == nil && (spec.UpdateConfig != nil || spec.RollbackConfig != nil) {
				t.Errorf("Normalize() filled an unset config: %v", spec)
			}
			again := proto.Clone(spec).(*berthv1.ServiceSpec)
			Normalize(again)
			if !proto.Equal(again, spec) {
				t.Errorf("Normalize is not idempotent:\n%v\nthen\n%v", spec, again)
			}
		})
	}
}
