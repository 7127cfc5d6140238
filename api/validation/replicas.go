package validation

import (
	"fmt"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// DefaultMaxReplicas caps one service's replicas when the cluster settings
// set no cap: the orchestrator keeps per-replica state, so a count typed
// by mistake (or on purpose) must not reach it.
const DefaultMaxReplicas = 10_000

// MaxReplicasLimit is the highest cap the cluster settings may set, and
// the cap ValidateSpec applies where the cluster's own is not known (a
// Compose file read by the CLI).
const MaxReplicasLimit = 1_000_000

// MaxReplicas is the cap on one service's replicas that settings set.
func MaxReplicas(settings *berthv1.ClusterSettings) uint64 {
	if m := settings.GetMaxReplicas(); m > 0 {
		return min(m, MaxReplicasLimit)
	}
	return DefaultMaxReplicas
}

// ReplicasReason says why replicas are refused under limit; empty when
// they are not. A global service's replicas are ignored.
func ReplicasReason(mode berthv1.ServiceMode, replicas, limit uint64) string {
	if mode == berthv1.ServiceMode_SERVICE_MODE_GLOBAL || replicas <= limit {
		return ""
	}
	return fmt.Sprintf("%d replicas is over the cluster's cap of %d per service; ask for fewer, split the service, or have an admin raise the cap (berth cluster settings --max-replicas N)", replicas, limit)
}

// ValidateReplicas checks the replicas of every service of an apply
// against the cluster's cap.
func ValidateReplicas(req *berthv1.ApplyRequest, limit uint64) Errors {
	var errs Errors
	for _, svc := range req.GetServices() {
		if r := ReplicasReason(svc.GetSpec().GetMode(), svc.GetSpec().GetReplicas(), limit); r != "" {
			errs = append(errs, FieldError{Service: svc.GetName(), Field: "deploy.replicas", Reason: r})
		}
	}
	return errs
}
