package validation

import (
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// The defaults Normalize fills in. They are the values users of other
// Compose-driven orchestrators already expect.
const (
	DefaultStopSignal      = "SIGTERM"
	DefaultStopGracePeriod = 10 * time.Second
	DefaultProtocol        = "tcp"
)

// Normalize fills in spec's defaults in place: replicated mode, tcp ports
// published in ingress mode (host mode for a range of host ports),
// endpoint mode vip,
// stop signal SIGTERM (and canonical signal names), a 10s stop grace period,
// and a restart policy of condition any. The restart delay stays unset
// unless given: unset means Berth's backoff (replace at once, then wait
// longer after each failure in a row). A dependency's unset condition
// becomes started. A set update_config or rollback_config gets its unset
// values stated (no delay, pause, monitor 5s, stop-first; parallelism is
// kept, 0 meaning all at once); an unset one stays nil, which means
// DefaultUpdateConfig. Platform names are lowercased and aliases like
// x86_64 become the names nodes report (amd64), in platforms and in
// constraints on node.platform. It sorts env by key, and
// depends_on by service, so equal specs compare equal. Mounts, secrets,
// configs and container options get theirs (normalizeStorage,
// normalizeContainer). Applying it twice changes nothing more.
// Replicas are left alone: 0 is a valid, deliberate count.
func Normalize(spec *berthv1.ServiceSpec) {
	if spec == nil {
		return
	}
	if spec.Mode == berthv1.ServiceMode_SERVICE_MODE_UNSPECIFIED {
		spec.Mode = berthv1.ServiceMode_SERVICE_MODE_REPLICATED
	}
	for _, p := range spec.Ports {
		if p == nil {
			continue
		}
		p.Protocol = strings.ToLower(p.Protocol)
		if p.Protocol == "" {
			p.Protocol = DefaultProtocol
		}
		switch {
		case p.Mode != berthv1.PublishMode_PUBLISH_MODE_UNSPECIFIED:
		case p.PublishedEnd != 0:
			// Each task takes a port of the range on its own node.
			p.Mode = berthv1.PublishMode_PUBLISH_MODE_HOST
		default:
			p.Mode = berthv1.PublishMode_PUBLISH_MODE_INGRESS
		}
	}
	if spec.EndpointMode == berthv1.EndpointMode_ENDPOINT_MODE_UNSPECIFIED {
		spec.EndpointMode = berthv1.EndpointMode_ENDPOINT_MODE_VIP
	}
	if spec.StopSignal == "" {
		spec.StopSignal = DefaultStopSignal
	} else if canonical, _, err := ParseSignal(spec.StopSignal); err == nil {
		spec.StopSignal = canonical
	}
	if spec.StopGracePeriod == nil {
		spec.StopGracePeriod = durationpb.New(DefaultStopGracePeriod)
	}
	if spec.RestartPolicy == nil {
		spec.RestartPolicy = &berthv1.RestartPolicy{}
	}
	if spec.RestartPolicy.Condition == berthv1.RestartCondition_RESTART_CONDITION_UNSPECIFIED {
		spec.RestartPolicy.Condition = berthv1.RestartCondition_RESTART_CONDITION_ANY
	}
	normalizeUpdateConfig(spec.UpdateConfig)
	normalizeUpdateConfig(spec.RollbackConfig)
	for _, p := range spec.GetPlacement().GetPlatforms() {
		normalizePlatform(p)
	}
	normalizeConstraints(spec.GetPlacement())
	normalizeDependencies(spec)
	normalizeStorage(spec)
	normalizeContainer(spec)
	// Stable, so entries with the same key (an error ValidateSpec reports)
	// keep their order.
	slices.SortStableFunc(spec.Env, func(a, b string) int {
		return strings.Compare(envKey(a), envKey(b))
	})
}

// envKey is the part of a KEY=VALUE entry before the first '='.
func envKey(entry string) string {
	key, _, _ := strings.Cut(entry, "=")
	return key
}
