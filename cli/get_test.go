package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func testServices() []*berthv1.ServiceSummary {
	return []*berthv1.ServiceSummary{
		{
			Service: &berthv1.Service{
				Meta: &berthv1.Meta{Id: "svc-web"}, App: "shop", Name: "web",
				Spec: &berthv1.ServiceSpec{Image: "shop/web:1", Mode: berthv1.ServiceMode_SERVICE_MODE_REPLICATED, Replicas: 3,
					Ports:    []*berthv1.PortSpec{{Target: 80, Published: 8080, Protocol: "tcp"}},
					Networks: []*berthv1.ServiceNetwork{{Network: "shop_default"}, {Network: "shared"}}},
				Endpoint: &berthv1.ServiceEndpoint{VirtualIps: []*berthv1.VirtualIP{{NetworkId: "net-shop", Network: "shop_default", Address: "10.10.0.3"}}},
			},
			DesiredTasks: 3, RunningTasks: 2,
		},
		{
			Service: &berthv1.Service{
				Meta: &berthv1.Meta{Id: "svc-agent"}, App: "shop", Name: "agent",
				Spec: &berthv1.ServiceSpec{Image: "busybox", Mode: berthv1.ServiceMode_SERVICE_MODE_GLOBAL},
			},
			DesiredTasks: 2, RunningTasks: 2,
		},
	}
}

func TestGetJSONFields(t *testing.T) {
	f := &fakeCluster{
		nodes:    testNodes(),
		services: testServices(),
		apps:     []*berthv1.App{{Name: "shop", Services: []string{"agent", "web"}, DesiredTasks: 5, RunningTasks: 4}},
	}
	cfg := serve(t, f)
	tests := []struct {
		args  []string
		count int
		keys  []string
		first map[string]any
	}{
		{
			args: []string{"get", "apps"}, count: 1,
			keys:  []string{"name", "services", "desired", "running"},
			first: map[string]any{"name": "shop", "desired": float64(5), "running": float64(4)},
		},
		{
			args: []string{"get", "services"}, count: 2,
			keys:  []string{"id", "app", "name", "mode", "replicas", "running", "image", "ports"},
			first: map[string]any{"id": "svc-agent", "name": "agent", "mode": "global", "replicas": float64(2)},
		},
		{
			args: []string{"get", "nodes"}, count: 2,
			keys:  []string{"id", "name", "status", "availability", "address", "labels", "cpu", "memory", "lastHeartbeat"},
			first: map[string]any{"name": "node-1", "status": "ready", "availability": "active", "cpu": float64(2), "memory": float64(8 << 30)},
		},
		{
			args: []string{"node", "ls"}, count: 2,
			keys:  []string{"id", "name", "status"},
			first: map[string]any{"name": "node-1"},
		},
	}
	for _, tt := range tests {
		for _, format := range []string{"json", "yaml"} {
			t.Run(strings.Join(tt.args, " ")+" "+format, func(t *testing.T) {
				r := mustRun(t, cfg, append(tt.args, "-o", format)...)
				data := []byte(r.stdout)
				if format == "yaml" {
					var err error
					if data, err = yaml.YAMLToJSON(data); err != nil {
						t.Fatalf("output is not YAML: %v\n%s", err, r.stdout)
					}
				}
				var rows []map[string]any
				if err := json.Unmarshal(data, &rows); err != nil {
					t.Fatalf("output is not an array: %v\n%s", err, r.stdout)
				}
				if len(rows) != tt.count {
					t.Fatalf("got %d objects, want %d", len(rows), tt.count)
				}
				for _, k := range tt.keys {
					if _, ok := rows[0][k]; !ok {
						t.Errorf("object lacks %q: %v", k, rows[0])
					}
				}
				for k, want := range tt.first {
					if rows[0][k] != want {
						t.Errorf("%s = %#v, want %#v", k, rows[0][k], want)
					}
				}
			})
		}
	}
}

func TestGetTables(t *testing.T) {
	f := &fakeCluster{
		nodes:    testNodes(),
		services: testServices(),
		apps:     []*berthv1.App{{Name: "shop", Services: []string{"agent", "web"}, DesiredTasks: 5, RunningTasks: 4}},
	}
	cfg := serve(t, f)
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"get", "apps"}, []string{"NAME", "SERVICES", "TASKS", "shop", "4/5"}},
		{[]string{"get", "services", "shop/web"}, []string{"NAME", "MODE", "REPLICAS", "IMAGE", "PORTS", "shop/web", "replicated", "2/3", "shop/web:1", "8080->80/tcp"}},
		{[]string{"get", "nodes"}, []string{"LAST HEARTBEAT", "node-1", "ready", "active", "127.0.0.1:7001", "8GiB", "disk=ssd,zone=eu", "node-2", "unreachable", "drain", "1.5", "512MiB"}},
		{[]string{"get", "nodes", "node-2"}, []string{"node-2"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := mustRun(t, cfg, tt.args...)
			for _, w := range tt.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, r.stdout)
				}
			}
		})
	}
	if r := mustRun(t, cfg, "get", "services", "shop/web"); strings.Contains(r.stdout, "agent") {
		t.Errorf("get services shop/web lists other services:\n%s", r.stdout)
	}
	if r := run(t, cfg, nil, "get", "apps", "nope"); r.code == 0 || !strings.Contains(r.stderr, `no app "nope"`) {
		t.Errorf("get apps nope: exit %d, stderr %q", r.code, r.stderr)
	}
}
