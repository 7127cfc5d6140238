package cli

import (
	"encoding/json"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestClusterSettings(t *testing.T) {
	f := newOpsCluster(false)
	f.settings = &berthv1.ClusterSettings{AutoRebalance: true, Meta: &berthv1.Meta{Version: 7}}
	cfg := serve(t, f)

	r := mustRun(t, cfg, "cluster", "settings")
	if r.stdout != "Strategy:        spread\nAuto-rebalance:  true\nMax replicas:    10000\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	if len(f.settingsReqs) != 0 {
		t.Errorf("settings changed without a flag")
	}

	r = mustRun(t, cfg, "cluster", "settings", "--strategy", "binpack", "-o", "json")
	var got settingsView
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("decode JSON: %v\n%s", err, r.stdout)
	}
	if got != (settingsView{Strategy: "binpack", AutoRebalance: true, MaxReplicas: 10000}) {
		t.Errorf("settings = %+v", got)
	}
	// Only the flag given changes; the rest is sent back as read.
	req := f.settingsReqs[0].Settings
	if req.Strategy != berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK || !req.AutoRebalance || req.GetMeta().GetVersion() != 7 {
		t.Errorf("UpdateSettings request = %v", req)
	}

	r = mustRun(t, cfg, "cluster", "settings", "--auto-rebalance=false", "-o", "yaml")
	if r.stdout != "autoRebalance: false\nmaxReplicas: 10000\nstrategy: binpack\n" {
		t.Errorf("yaml = %q", r.stdout)
	}
}

func TestClusterSettingsBadStrategy(t *testing.T) {
	f := newOpsCluster(false)
	cfg := serve(t, f)
	r := run(t, cfg, nil, "cluster", "settings", "--strategy", "fast")
	if r.code == 0 || !strings.Contains(r.stderr, `berth: unknown strategy "fast": use spread or binpack`) {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if len(f.settingsReqs) != 0 {
		t.Errorf("settings changed despite a bad flag")
	}
}

func TestClusterSettingsMaxReplicas(t *testing.T) {
	f := newOpsCluster(false)
	f.settings = &berthv1.ClusterSettings{Strategy: berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK}
	cfg := serve(t, f)
	mustRun(t, cfg, "cluster", "settings", "--max-replicas", "500")
	if len(f.settingsReqs) != 1 {
		t.Fatalf("%d updates", len(f.settingsReqs))
	}
	if req := f.settingsReqs[0].Settings; req.MaxReplicas != 500 || req.Strategy != berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK {
		t.Errorf("UpdateSettings request = %v", req)
	}
	r := run(t, cfg, nil, "cluster", "settings", "--max-replicas", "100000000000")
	if r.code != 2 || !strings.Contains(r.stderr, "over the highest cap of 1000000") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if len(f.settingsReqs) != 1 {
		t.Errorf("settings changed despite a bad flag")
	}
}

func TestClusterSettingsLogLimits(t *testing.T) {
	f := newOpsCluster(false)
	f.settings = &berthv1.ClusterSettings{Meta: &berthv1.Meta{Version: 3}}
	cfg := serve(t, f)
	r := mustRun(t, cfg, "cluster", "settings", "--log-max-size", "20m", "--log-max-file", "5")
	req := f.settingsReqs[0].Settings
	if req.GetLogging().GetMaxSize() != 20_000_000 || req.GetLogging().GetMaxFile() != 5 {
		t.Errorf("UpdateSettings request logging = %v, want 20000000 bytes × 5", req.GetLogging())
	}
	if !strings.Contains(r.stdout, "Log max size:    20m\n") || !strings.Contains(r.stdout, "Log max file:    5\n") {
		t.Errorf("stdout = %q, want the log limits", r.stdout)
	}
	// Only the flag given changes.
	mustRun(t, cfg, "cluster", "settings", "--log-max-file", "2")
	if got := f.settingsReqs[1].Settings.GetLogging(); got.GetMaxSize() != 20_000_000 || got.GetMaxFile() != 2 {
		t.Errorf("second request logging = %v, want 20000000 bytes × 2", got)
	}
	for _, args := range [][]string{
		{"cluster", "settings", "--log-max-size", "huge"},
		{"cluster", "settings", "--log-max-size", "10"},
		{"cluster", "settings", "--log-max-file", "0x"},
		{"cluster", "settings", "--log-max-file", "500"},
	} {
		if r := run(t, cfg, nil, args...); r.code != exitUsage || !strings.Contains(r.stderr, args[2]) {
			t.Errorf("berth %s: exit %d, stderr %q; want %d naming %s", strings.Join(args, " "), r.code, r.stderr, exitUsage, args[2])
		}
	}
	if len(f.settingsReqs) != 2 {
		t.Errorf("%d settings updates, want 2: bad flags change nothing", len(f.settingsReqs))
	}
}
