package compose

import (
	"fmt"
	"strconv"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"google.golang.org/protobuf/types/known/durationpb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
)

// failureActions and updateOrders map Compose's words onto Berth's.
var (
	failureActions = map[string]berthv1.UpdateFailureAction{
		"pause":    berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE,
		"continue": berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_CONTINUE,
		"rollback": berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK,
	}
	updateOrders = map[string]berthv1.UpdateOrder{
		"stop-first":  berthv1.UpdateOrder_UPDATE_ORDER_STOP_FIRST,
		"start-first": berthv1.UpdateOrder_UPDATE_ORDER_START_FIRST,
	}
)

// updateConfig maps deploy.update_config, or deploy.rollback_config (field
// names which), onto ServiceSpec.update_config or rollback_config.
//
// A service whose file has no such block gets nil, which means every
// default (validation.DefaultUpdateConfig): parallelism 1, no delay,
// failure action pause, monitor 5s, max failure ratio 0, stop-first. A
// block that is present comes out complete: parallelism, unset, becomes 1
// here (0 as written stays 0, all at once), and validation.Normalize,
// which Load runs next, states the other unset keys with the same
// defaults. The loader cannot tell monitor: 0s from no monitor at all, so
// both mean 5s.
//
// rollback as the failure action of a rollback_config is converted, and
// validation.ValidateSpec rejects it, so API clients meet the same rule.
func updateConfig(service, field string, uc *types.UpdateConfig) (*berthv1.UpdateConfig, validation.Errors) {
	if uc == nil {
		return nil, nil
	}
	var errs validation.Errors
	out := &berthv1.UpdateConfig{
		Parallelism:     validation.DefaultUpdateParallelism,
		MaxFailureRatio: float32To64(uc.MaxFailureRatio),
	}
	if uc.Parallelism != nil {
		out.Parallelism = *uc.Parallelism
	}
	if uc.Delay != 0 {
		out.Delay = durationpb.New(time.Duration(uc.Delay))
	}
	if uc.Monitor != 0 {
		out.Monitor = durationpb.New(time.Duration(uc.Monitor))
	}
	if uc.FailureAction != "" {
		a, ok := failureActions[uc.FailureAction]
		if !ok {
			use := "pause, continue or rollback"
			if field == "deploy.rollback_config" {
				use = "pause or continue"
			}
			errs = append(errs, validation.FieldError{Service: service, Field: field + ".failure_action",
				Reason: fmt.Sprintf("unknown failure action %q; use %s", uc.FailureAction, use)})
		}
		out.FailureAction = a
	}
	if uc.Order != "" {
		o, ok := updateOrders[uc.Order]
		if !ok {
			errs = append(errs, validation.FieldError{Service: service, Field: field + ".order",
				Reason: fmt.Sprintf("unknown order %q; use stop-first or start-first", uc.Order)})
		}
		out.Order = o
	}
	return out, errs
}

// float32To64 widens f by its shortest decimal form, so 0.1 stays 0.1
// rather than becoming 0.10000000149011612.
func float32To64(f float32) float64 {
	d, err := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
	if err != nil {
		return float64(f)
	}
	return d
}
