package validation

import (
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestMaxReplicas(t *testing.T) {
	for _, tc := range []struct {
		set, want uint64
	}{{0, DefaultMaxReplicas}, {50, 50}, {MaxReplicasLimit + 1, MaxReplicasLimit}} {
		if got := MaxReplicas(&berthv1.ClusterSettings{MaxReplicas: tc.set}); got != tc.want {
			t.Errorf("MaxReplicas(%d) = %d, want %d", tc.set, got, tc.want)
		}
	}
	if got := MaxReplicas(nil); got != DefaultMaxReplicas {
		t.Errorf("MaxReplicas(nil) = %d", got)
	}
}

func TestValidateReplicas(t *testing.T) {
	req := &berthv1.ApplyRequest{Services: []*berthv1.Service{
		{Name: "ok", Spec: &berthv1.ServiceSpec{Replicas: 10}},
		{Name: "big", Spec: &berthv1.ServiceSpec{Replicas: 11}},
		{Name: "global", Spec: &berthv1.ServiceSpec{Replicas: 1000, Mode: berthv1.ServiceMode_SERVICE_MODE_GLOBAL}},
	}}
	errs := ValidateReplicas(req, 10)
	if len(errs) != 1 || errs[0].Service != "big" || errs[0].Field != "deploy.replicas" || !strings.Contains(errs[0].Reason, "11 replicas is over the cluster's cap of 10") {
		t.Fatalf("ValidateReplicas = %v", errs)
	}
}

func TestValidateNamespaceName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{{"team-a", true}, {"a", true}, {"default", true}, {"Team-A", false}, {"team_a", false}, {"-a", false}, {"a-", false}, {"", false}, {strings.Repeat("a", 64), false}} {
		if err := ValidateNamespaceName(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidateNamespaceName(%q) = %v", tc.name, err)
		}
	}
}
