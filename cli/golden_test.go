package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// update rewrites the golden files from the output of this run:
//
//	go test ./cli -run TestGolden -update
var update = flag.Bool("update", false, "rewrite cli/testdata/*.golden from the commands' output")

func init() {
	// Event tables show local times; the golden files are in UTC.
	time.Local = time.UTC
}

// goldenNow is the clock of the golden runs; the objects are stamped
// relative to it, so ages read "12s ago", "3m ago".
var goldenNow = testEpoch.Add(10 * time.Minute)

// goldenCluster answers every listing with fixed objects stamped relative
// to goldenNow.
func goldenCluster() *eventsCluster {
	tasks := append(testTasks(goldenNow), testEventTasks(goldenNow)...)
	return &eventsCluster{
		fakeCluster: &fakeCluster{
			nodes:    testNodes(),
			services: testServices(),
			tasks:    tasks,
			apps: []*berthv1.App{
				{Name: "shop", Services: []string{"agent", "web"}, DesiredTasks: 5, RunningTasks: 4},
				{Name: "admin", Services: []string{"api"}, DesiredTasks: 1},
			},
		},
		events: testEvents(goldenNow),
	}
}

func TestGolden(t *testing.T) {
	cfg := serve(t, goldenCluster())
	tests := []struct {
		name string
		args []string
	}{
		{"ps", []string{"ps"}},
		{"ps_all_json", []string{"ps", "--all", "-o", "json"}},
		{"ps_wide", []string{"ps", "-o", "wide"}},
		{"ps_shop_yaml", []string{"ps", "shop", "-o", "yaml"}},
		{"get_apps", []string{"get", "apps"}},
		{"get_apps_json", []string{"get", "apps", "-o", "json"}},
		{"get_services", []string{"get", "services"}},
		{"get_services_yaml", []string{"get", "services", "-o", "yaml"}},
		{"get_nodes", []string{"get", "nodes"}},
		{"get_nodes_json", []string{"get", "nodes", "-o", "json"}},
		{"node_ls", []string{"node", "ls"}},
		{"node_ls_yaml", []string{"node", "ls", "-o", "yaml"}},
		{"events", []string{"events"}},
		{"events_json", []string{"events", "-o", "json"}},
		{"describe_service", []string{"describe", "shop/web"}},
		{"describe_task", []string{"describe", "task", failedTaskID}},
		{"describe_node", []string{"describe", "node", "node-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runAt(t, cfg, goldenNow, tt.args...)
			if r.code != 0 {
				t.Fatalf("berth %s: exit %d, stderr:\n%s", strings.Join(tt.args, " "), r.code, r.stderr)
			}
			checkGolden(t, tt.name, r.stdout)
		})
	}
}

// checkGolden compares got with testdata/NAME.golden, or rewrites the file
// with -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file: %v (run `go test ./cli -run TestGolden -update` to make it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (rerun with -update if the change is meant):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// runAt runs berth like run, with the clock of its ages fixed at now.
func runAt(t *testing.T, cfgPath string, now time.Time, args ...string) result {
	t.Helper()
	root := newRoot(&rootOptions{now: func() time.Time { return now }})
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetIn(strings.NewReader(""))
	root.SetArgs(append([]string{"--config", cfgPath}, args...))
	code := Execute(t.Context(), root)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}
