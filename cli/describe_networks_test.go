package cli

import (
	"bytes"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestServiceNetworksSection(t *testing.T) {
	run, stop := berthv1.TaskState_TASK_STATE_RUNNING, berthv1.TaskState_TASK_STATE_SHUTDOWN
	on := func(state, desired berthv1.TaskState, health berthv1.Health, addr string) *berthv1.Task {
		return &berthv1.Task{DesiredState: desired, Status: &berthv1.TaskStatus{State: state, Health: health},
			Networks: []*berthv1.TaskNetwork{{Network: "shop_back", Address: addr}}}
	}
	tasks := []*berthv1.Task{
		on(run, run, berthv1.Health_HEALTH_HEALTHY, "10.0.0.12/24"),
		on(run, run, berthv1.Health_HEALTH_UNHEALTHY, "10.0.0.4/24"),
		on(run, stop, berthv1.Health_HEALTH_UNSPECIFIED, "10.0.0.9/24"),
		on(berthv1.TaskState_TASK_STATE_FAILED, run, berthv1.Health_HEALTH_UNSPECIFIED, "10.0.0.2/24"),
	}
	tests := []struct {
		name string
		mode berthv1.EndpointMode
		nets []*berthv1.ServiceNetwork
		want []string
	}{
		{"vip", berthv1.EndpointMode_ENDPOINT_MODE_UNSPECIFIED, []*berthv1.ServiceNetwork{{Network: "shop_back"}},
			[]string{"shop_back   10.0.0.3     10.0.0.4 (not ready), 10.0.0.9 (not ready), 10.0.0.12 (ready)"}},
		{"dnsrr", berthv1.EndpointMode_ENDPOINT_MODE_DNSRR, []*berthv1.ServiceNetwork{{Network: "shop_back"}},
			[]string{"shop_back   none (dnsrr)"}},
		{"no networks", berthv1.EndpointMode_ENDPOINT_MODE_UNSPECIFIED, nil, []string{"Networks:\t<none>"}},
	}
	for _, tt := range tests {
		svc := &berthv1.Service{Spec: &berthv1.ServiceSpec{EndpointMode: tt.mode, Networks: tt.nets}}
		if tt.mode != berthv1.EndpointMode_ENDPOINT_MODE_DNSRR {
			svc.Endpoint = &berthv1.ServiceEndpoint{VirtualIps: []*berthv1.VirtualIP{{Network: "shop_back", Address: "10.0.0.3"}}}
		}
		var b bytes.Buffer
		printServiceNetworks(&b, svc, tasks)
		for _, w := range tt.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s: section\n%s\ndoes not hold %q", tt.name, b.String(), w)
			}
		}
	}
}
