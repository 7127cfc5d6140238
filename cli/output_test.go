package cli

import (
	"strings"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestScriptingOutput(t *testing.T) {
	f := &fakeCluster{
		nodes: testNodes(),
		tasks: testTasks(time.Now()),
		services: []*berthv1.ServiceSummary{
			{Service: &berthv1.Service{Meta: &berthv1.Meta{Id: "svc-1"}, App: "shop", Name: "web", Spec: &berthv1.ServiceSpec{Image: "web:1", Labels: map[string]string{"tier": "front"}}}},
			{Service: &berthv1.Service{Meta: &berthv1.Meta{Id: "svc-2"}, App: "shop", Name: "db", Spec: &berthv1.ServiceSpec{Image: "db:1", ImageDigest: "sha256:0123456789abcdef0123"}}},
		},
	}
	cfg := serve(t, f)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"ps -q", []string{"ps", "-q"}, "task-api-1-0123456789\ntask-web-1-0123456789\ntask-web-2-0123456789\n"},
		{"ps --quiet filtered by state", []string{"ps", "--quiet", "--filter", "state=pending"}, "task-web-2-0123456789\n"},
		{"ps two values of one key", []string{"ps", "-q", "--filter", "state=pending", "--filter", "state=failed"}, "task-api-1-0123456789\ntask-web-2-0123456789\n"},
		{"ps two keys", []string{"ps", "-q", "--filter", "app=shop", "--filter", "desired-state=running", "--filter", "name=web.2"}, "task-web-2-0123456789\n"},
		{"ps jsonpath list", []string{"ps", "-o", "jsonpath={[*].slot}"}, "1 1 2"},
		{"ps jsonpath range", []string{"ps", "-o", `jsonpath={range [*]}{.app}/{.service}.{.slot}{"\n"}{end}`}, "admin/api.1\nshop/web.1\nshop/web.2\n"},
		{"ps go template", []string{"ps", "--format", "{{.service}}.{{.slot}} {{.state}}"}, "api.1 failed\nweb.1 running\nweb.2 pending\n"},
		{"ps go template table", []string{"ps", "--format", `table {{.service}}\t{{.node}}`}, "SERVICE   NODE\napi       node-1\nweb       node-1\nweb       node-2\n"},
		{"ps template json helper", []string{"ps", "--filter", "name=web.1", "--format", "{{json .ports}}"}, `[{"protocol":"tcp","published":8080,"target":80}]` + "\n"},
		{"ps --format json", []string{"ps", "--filter", "name=shop/web.2", "--format", "json", "-q=false"}, ""},
		{"nodes by label", []string{"get", "nodes", "-q", "--filter", "label=zone=eu"}, "n1aaaaaaaaaaaaaaaa\n"},
		{"nodes by label key", []string{"node", "ls", "-q", "--filter", "label=zone"}, "n1aaaaaaaaaaaaaaaa\n"},
		{"services -q names APP/SERVICE", []string{"get", "services", "-q"}, "shop/db\nshop/web\n"},
		{"services by label", []string{"get", "services", "--filter", "label=tier=front", "--format", "{{.app}}/{{.name}} {{.image}}"}, "shop/web web:1\n"},
		{"services wide", []string{"get", "services", "--filter", "name=db", "-o", "wide"}, "NAME      MODE   REPLICAS   IMAGE   PORTS   DIGEST         ID\nshop/db          0/0        db:1            0123456789ab   svc-2\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRun(t, cfg, tt.args...)
			if tt.want == "" {
				if !strings.HasPrefix(r.stdout, "[") || !strings.Contains(r.stdout, `"id": "task-web-2-0123456789"`) {
					t.Errorf("stdout %q, want a JSON list of the one task", r.stdout)
				}
				return
			}
			if r.stdout != tt.want {
				t.Errorf("berth %s:\n got %q\nwant %q", strings.Join(tt.args, " "), r.stdout, tt.want)
			}
		})
	}
	// The filters a request can carry go to the server.
	f.taskReqs = nil
	mustRun(t, cfg, "ps", "-q", "--filter", "service=shop/web", "--filter", "node=node-2")
	if req := f.taskReqs[0]; req.App != "shop" || req.Service != "web" || req.NodeId != "n2bbbbbbbbbbbbbbbb" {
		t.Errorf("ListTasks request = %v, want app, service and node from the filters", req)
	}
	f.serviceReqs = nil
	mustRun(t, cfg, "get", "services", "--filter", "app=shop")
	if req := f.serviceReqs[0]; req.App != "shop" {
		t.Errorf("ListServices request = %v, want app shop", req)
	}
}

func TestScriptingOutputUsageErrors(t *testing.T) {
	cfg := serve(t, &fakeCluster{nodes: testNodes(), tasks: testTasks(time.Now())})
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown filter key", []string{"ps", "--filter", "colour=red"}, []string{`unknown key "colour"`, "app, desired-state, label, name, namespace, node, service, state"}},
		{"filter without value", []string{"get", "nodes", "--filter", "status"}, []string{`--filter "status": write KEY=VALUE`, "availability"}},
		{"bad jsonpath", []string{"ps", "-o", "jsonpath={.id"}, []string{`jsonpath template "{.id"`, "unclosed action"}},
		{"jsonpath on a missing field", []string{"ps", "-o", "jsonpath={[*].colour}"}, []string{`jsonpath template "{[*].colour}"`, "colour is not found"}},
		{"bad template", []string{"ps", "--format", "{{.id"}, []string{`--format "{{.id"`, "unclosed action"}},
		{"template on a missing field", []string{"ps", "--format", "{{.Name}}"}, []string{`--format "{{.Name}}"`, `no entry for key "Name"`, "the fields are those of -o json: addresses, app,"}},
		{"two output flags", []string{"ps", "-q", "-o", "json"}, []string{"-q and -o both choose the output"}},
		{"events: two apps", []string{"events", "--filter", "app=a", "--filter", "app=b"}, []string{"--filter app= is given 2 times"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, cfg, nil, tt.args...)
			if r.code != exitUsage {
				t.Errorf("exit %d, want %d; stderr %q", r.code, exitUsage, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q lacks %q", r.stderr, w)
				}
			}
		})
	}
}
