package apiserver

import (
	"context"
	"fmt"
	"slices"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
	"github.com/berthproject/berth/controlplane/registry"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/vulndb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// GetSettings returns the cluster settings; the defaults (spread
// scheduling, no automatic rebalance) when none were ever set.
func (s *Server) GetSettings(ctx context.Context, req *berthv1.GetSettingsRequest) (*berthv1.ClusterSettings, error) {
	return s.cfg.Cache.Settings(), nil
}

// UpdateSettings replaces the cluster settings.
func (s *Server) UpdateSettings(ctx context.Context, req *berthv1.UpdateSettingsRequest) (*berthv1.ClusterSettings, error) {
	want := req.GetSettings()
	if want == nil {
		return nil, status.Error(codes.InvalidArgument, "settings are missing from the request")
	}
	switch want.Strategy {
	case berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_UNSPECIFIED,
		berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_SPREAD,
		berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK:
	default:
		return nil, status.Errorf(codes.InvalidArgument, "unknown scheduling strategy %d; use spread or binpack", want.Strategy)
	}
	if want.MaxReplicas > validation.MaxReplicasLimit {
		return nil, status.Errorf(codes.InvalidArgument, "max_replicas %d is over the highest cap of %d; choose a lower one (0 means %d)", want.MaxReplicas, validation.MaxReplicasLimit, validation.DefaultMaxReplicas)
	}
	insecure, err := normalizeRegistries(want.InsecureRegistries)
	if err != nil {
		return nil, err
	}
	binds, err := normalizeBindPrefixes(want.AllowedBindMounts)
	if err != nil {
		return nil, err
	}
	block, err := normalizeBlockSeverity(want.BlockSeverity, "")
	if err != nil {
		return nil, err
	}
	logging, err := normalizeLogDefaults(want.GetLogging())
	if err != nil {
		return nil, err
	}
	read := func() (*berthv1.ClusterSettings, error) {
		cur := proto.Clone(s.cfg.Cache.Settings()).(*berthv1.ClusterSettings)
		if cur.Meta == nil {
			// Never stored: the write is guarded by revision 0, which
			// holds only while the key is absent.
			cur.Meta = &berthv1.Meta{CreatedAt: timestamppb.Now()}
		}
		return cur, nil
	}
	var before *berthv1.ClusterSettings
	got, err := guardedUpdate(ctx, s, store.SettingsKey, read, func(next *berthv1.ClusterSettings) error {
		before = proto.Clone(next).(*berthv1.ClusterSettings)
		if next.Strategy == want.Strategy && next.AutoRebalance == want.AutoRebalance && slices.Equal(next.InsecureRegistries, insecure) && next.MaxReplicas == want.MaxReplicas &&
			sameHostAccess(next, want, binds) && next.BlockSeverity == block && proto.Equal(next.GetLogging(), logging) && next.GetMeta().GetVersion() != 0 {
			return errUnchanged
		}
		next.Strategy, next.AutoRebalance, next.InsecureRegistries = want.Strategy, want.AutoRebalance, insecure
		next.MaxReplicas = want.MaxReplicas
		next.BlockSeverity = block
		next.Logging = logging
		setHostAccess(next, want, binds)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if got.GetMeta().GetVersion() != before.GetMeta().GetVersion() {
		msg := fmt.Sprintf("cluster settings changed: strategy %s, auto rebalance %v", strategyName(got.Strategy), got.AutoRebalance)
		if len(got.InsecureRegistries) > 0 {
			msg += ", insecure registries " + strings.Join(got.InsecureRegistries, ", ")
		}
		msg += hostAccessWords(got)
		msg += fmt.Sprintf(", max replicas %d", validation.MaxReplicas(got))
		if got.BlockSeverity != "" {
			msg += ", scan gate blocks " + got.BlockSeverity + " and above"
		}
		msg += logDefaultsWords(got.GetLogging())
		s.log.Info("settings updated", "strategy", strategyName(got.Strategy), "auto_rebalance", got.AutoRebalance, "insecure_registries", got.InsecureRegistries)
		s.cfg.Store.RecordEvent(&berthv1.Event{Kind: store.EventKindCluster, ObjectId: "settings", Action: "update", Message: msg})
	}
	return got, nil
}

// normalizeRegistries checks the insecure registries of a settings
// update and returns them normalized, sorted and without duplicates.
func normalizeRegistries(in []string) ([]string, error) {
	var out []string
	for _, r := range in {
		if strings.TrimSpace(r) == "" {
			continue
		}
		n, err := registry.Normalize(r)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "insecure registry: %v", err)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// strategyName is how messages name a scheduling strategy.
func strategyName(st berthv1.SchedulingStrategy) string {
	switch st {
	case berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK:
		return "binpack"
	case berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_SPREAD:
		return "spread"
	}
	return "spread (default)"
}

// normalizeBlockSeverity checks a scan gate's severity and returns how it
// is stored: lower case, "" for none. none is what "none" becomes (the
// namespace's explicit "none" stays "none", so that it overrides the
// cluster's gate).
func normalizeBlockSeverity(v, none string) (string, error) {
	sev, err := vulndb.ParseSeverity(v)
	if err != nil {
		return "", status.Errorf(codes.InvalidArgument, "block severity: %v", err)
	}
	if sev == berthv1.Severity_SEVERITY_UNSPECIFIED {
		if strings.TrimSpace(v) == "" {
			return "", nil
		}
		return none, nil
	}
	return vulndb.SeverityName(sev), nil
}
