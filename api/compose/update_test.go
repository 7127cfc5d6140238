package compose

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
)

// TestLoadConvertsDeployExtensions covers update and rollback configs,
// placement caps, platforms and x-berth.
func TestLoadConvertsDeployExtensions(t *testing.T) {
	tests := []struct {
		name string
		// web is the body of service web, indented by four spaces.
		web  string
		env  map[string]string
		want *berthv1.ServiceSpec
	}{
		{
			name: "no update_config leaves both configs unset",
			web:  "    image: busybox\n    deploy: {replicas: 2}\n",
			want: defaults(&berthv1.ServiceSpec{Image: "busybox", Replicas: 2}),
		},
		{
			name: "update and rollback configs in full",
			web: `    image: busybox
    deploy:
      update_config:
        parallelism: 2
        delay: 10s
        failure_action: rollback
        monitor: 30s
        max_failure_ratio: 0.1
        order: start-first
      rollback_config:
        parallelism: 0
        delay: 1s
        failure_action: continue
        monitor: 1m
        max_failure_ratio: 1
        order: stop-first
`,
			want: defaults(&berthv1.ServiceSpec{
				Image: "busybox",
				UpdateConfig: &berthv1.UpdateConfig{
					Parallelism:     2,
					Delay:           dur(10 * time.Second),
					FailureAction:   berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK,
					Monitor:         dur(30 * time.Second),
					MaxFailureRatio: 0.1,
					Order:           berthv1.UpdateOrder_UPDATE_ORDER_START_FIRST,
				},
				RollbackConfig: &berthv1.UpdateConfig{
					Parallelism:     0,
					Delay:           dur(time.Second),
					FailureAction:   berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_CONTINUE,
					Monitor:         dur(time.Minute),
					MaxFailureRatio: 1,
					Order:           berthv1.UpdateOrder_UPDATE_ORDER_STOP_FIRST,
				},
			}),
		},
		{
			name: "unset keys of a set config take the defaults",
			web:  "    image: busybox\n    deploy:\n      update_config: {delay: 5s}\n      rollback_config: {}\n",
			want: defaults(&berthv1.ServiceSpec{
				Image: "busybox",
				UpdateConfig: &berthv1.UpdateConfig{
					Parallelism:   1,
					Delay:         dur(5 * time.Second),
					FailureAction: berthv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE,
					Monitor:       dur(5 * time.Second),
					Order:         berthv1.UpdateOrder_UPDATE_ORDER_STOP_FIRST,
				},
				RollbackConfig: validation.DefaultUpdateConfig(),
			}),
		},
		{
			name: "interpolated values",
			web:  "    image: busybox\n    deploy:\n      update_config:\n        parallelism: ${PAR}\n        max_failure_ratio: ${RATIO}\n",
			env:  map[string]string{"PAR": "3", "RATIO": "0.25"},
			want: defaults(&berthv1.ServiceSpec{
				Image: "busybox",
				UpdateConfig: &berthv1.UpdateConfig{
					Parallelism:     3,
					MaxFailureRatio: 0.25,
				},
			}),
		},
		{
			name: "max replicas per node",
			web:  "    image: busybox\n    deploy:\n      replicas: 4\n      placement:\n        max_replicas_per_node: 2\n",
			want: defaults(&berthv1.ServiceSpec{Image: "busybox", Replicas: 4, Placement: &berthv1.Placement{MaxReplicasPerNode: 2}}),
		},
		{
			name: "platform with a variant",
			web:  "    image: busybox\n    platform: linux/arm64/v8\n",
			want: defaults(&berthv1.ServiceSpec{Image: "busybox", Placement: &berthv1.Placement{
				Platforms: []*berthv1.Platform{{Os: "linux", Architecture: "arm64/v8"}},
			}}),
		},
		{
			name: "platform alias beside constraints",
			web:  "    image: busybox\n    platform: Linux/x86_64\n    deploy:\n      placement:\n        constraints: [node.labels.zone==eu]\n",
			want: defaults(&berthv1.ServiceSpec{Image: "busybox", Placement: &berthv1.Placement{
				Constraints: []string{"node.labels.zone==eu"},
				Platforms:   []*berthv1.Platform{{Os: "linux", Architecture: "amd64"}},
			}}),
		},
		{
			name: "binpack",
			web:  "    image: busybox\n    x-berth:\n      strategy: binpack\n",
			want: defaults(&berthv1.ServiceSpec{Image: "busybox", Strategy: berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK}),
		},
		{
			name: "allow-vulnerabilities",
			web:  "    image: busybox\n    x-berth:\n      allow-vulnerabilities: [CVE-2024-0001, GHSA-aaaa-bbbb-cccc]\n",
			want: defaults(&berthv1.ServiceSpec{Image: "busybox", AllowVulnerabilities: []string{"CVE-2024-0001", "GHSA-aaaa-bbbb-cccc"}}),
		},
		{
			name: "spread",
			web:  "    image: busybox\n    x-berth: {strategy: spread}\n",
			want: defaults(&berthv1.ServiceSpec{Image: "busybox", Strategy: berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_SPREAD}),
		},
		{
			name: "empty x-berth",
			web:  "    image: busybox\n    x-berth: {}\n",
			want: defaults(&berthv1.ServiceSpec{Image: "busybox"}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeProject(t, map[string]string{"compose.yaml": "services:\n  web:\n" + tt.web})
			p, err := loadDir(t, dir, Options{Environment: tt.env})
			if err != nil {
				t.Fatalf("Load() error:\n%v", err)
			}
			if len(p.Warnings) > 0 {
				t.Errorf("Load() warnings = %q, want none", p.Warnings)
			}
			if got := p.Services[0].GetSpec(); !proto.Equal(got, tt.want) {
				t.Errorf("spec of web =\n%v\nwant\n%v", got, tt.want)
			}
		})
	}
}

// TestLoadDeployExtensionErrors checks that each problem names the file
// and line of the key, the service, the field, and how to fix it.
func TestLoadDeployExtensionErrors(t *testing.T) {
	tests := []struct {
		name string
		web  string // the body of service web, indented by four spaces
		want []string
	}{
		{
			name: "rollback in rollback_config",
			web:  "    image: busybox\n    deploy:\n      rollback_config:\n        failure_action: rollback\n",
			want: []string{`compose.yaml:6: service "web": deploy.rollback_config.failure_action: rollback is not valid in rollback_config: a failed rollback has no earlier spec to return to; use pause or continue`},
		},
		{
			name: "unknown failure actions",
			web:  "    image: busybox\n    deploy:\n      update_config:\n        failure_action: stop\n      rollback_config:\n        failure_action: Pause\n",
			want: []string{
				`compose.yaml:6: service "web": deploy.update_config.failure_action: unknown failure action "stop"; use pause, continue or rollback`,
				`compose.yaml:8: service "web": deploy.rollback_config.failure_action: unknown failure action "Pause"; use pause or continue`,
			},
		},
		{
			name: "unknown order",
			web:  "    image: busybox\n    deploy:\n      update_config:\n        order: random\n",
			want: []string{`compose.yaml:6: service "web": deploy.update_config.order: value must be one of 'start-first', 'stop-first'`},
		},
		{
			name: "failure ratio and durations out of range",
			web:  "    image: busybox\n    deploy:\n      update_config:\n        max_failure_ratio: 1.5\n        delay: -1s\n        monitor: -2s\n",
			want: []string{
				`compose.yaml:6: service "web": deploy.update_config.max_failure_ratio: 1.5 is outside 0 to 1; give the share of tasks that may fail, like 0.2 for one in five`,
				`compose.yaml:7: service "web": deploy.update_config.delay: -1s is negative`,
				`compose.yaml:8: service "web": deploy.update_config.monitor: -2s is negative`,
			},
		},
		{
			name: "values the loader cannot decode",
			web:  "    image: busybox\n    deploy:\n      update_config:\n        parallelism: -1\n        delay: soon\n",
			want: []string{
				`compose.yaml:6: service "web": deploy.update_config.parallelism: invalid value: cannot parse value as 'uint64': -1 overflows uint`,
				`compose.yaml:7: service "web": deploy.update_config.delay: invalid value: time: invalid duration "soon"`,
			},
		},
		{
			name: "platform without an architecture",
			web:  "    image: busybox\n    platform: linux\n",
			want: []string{`compose.yaml:4: service "web": platform: "linux" is not os/arch[/variant]; write it like linux/amd64 or linux/arm/v7`},
		},
		{
			name: "unknown architecture",
			web:  "    image: busybox\n    platform: linux/amd46\n",
			want: []string{`compose.yaml:4: service "web": platform: "linux/amd46": unknown architecture "amd46"; use one of 386, amd64, arm, arm64,`},
		},
		{
			name: "unknown keys in x-berth",
			web:  "    image: busybox\n    x-berth:\n      strategy: binpack\n      stratgy: spread\n      replicas: 2\n",
			want: []string{
				`compose.yaml:7: service "web": x-berth.replicas: unknown key "replicas"; x-berth allows allow-vulnerabilities, strategy`,
				`compose.yaml:6: service "web": x-berth.stratgy: unknown key "stratgy"; x-berth allows allow-vulnerabilities, strategy`,
			},
		},
		{
			name: "unknown strategy",
			web:  "    image: busybox\n    x-berth:\n      strategy: fastest\n",
			want: []string{`compose.yaml:5: service "web": x-berth.strategy: "fastest" is not a strategy; use spread or binpack`},
		},
		{
			name: "allow-vulnerabilities not a list",
			web:  "    image: busybox\n    x-berth:\n      allow-vulnerabilities: CVE-2024-1\n",
			want: []string{`compose.yaml:5: service "web": x-berth.allow-vulnerabilities: must be a list of vulnerability ids, like [CVE-2024-1234]; got "CVE-2024-1"`},
		},
		{
			name: "allow-vulnerabilities item with spaces",
			web:  "    image: busybox\n    x-berth:\n      allow-vulnerabilities: [\"CVE-1, CVE-2\"]\n",
			want: []string{`compose.yaml:5: service "web": x-berth.allow-vulnerabilities: item 0, "CVE-1, CVE-2", is not a vulnerability id`},
		},
		{
			name: "x-berth that is not a mapping",
			web:  "    image: busybox\n    x-berth: binpack\n",
			want: []string{`compose.yaml:4: service "web": x-berth: must be a mapping of allow-vulnerabilities, strategy, like x-berth: {strategy: binpack}`},
		},
		{
			name: "memory limit too small",
			web:  "    image: busybox\n    deploy:\n      resources:\n        limits: {memory: 4m}\n",
			want: []string{`compose.yaml:6: service "web": deploy.resources.limits.memory: 4194304 bytes (4 MiB) is too little for a container to start; give at least 6m (6291456 bytes), or leave it unset`},
		},
		{
			name: "reservations above limits",
			web:  "    image: busybox\n    deploy:\n      resources:\n        limits: {cpus: \"0.5\", memory: 64m}\n        reservations:\n          cpus: \"1\"\n          memory: 128m\n",
			want: []string{
				`compose.yaml:8: service "web": deploy.resources.reservations.cpus: reserves 1 CPUs, more than the limit of 0.5; lower the reservation or raise the limit`,
				`compose.yaml:9: service "web": deploy.resources.reservations.memory: reserves 134217728 bytes, more than the limit of 67108864`,
			},
		},
		{
			name: "cpus that round to nothing or are negative",
			web:  "    image: busybox\n    deploy:\n      resources:\n        limits:\n          cpus: \"0.0001\"\n        reservations:\n          cpus: \"-1\"\n",
			want: []string{
				`compose.yaml:7: service "web": deploy.resources.limits.cpus: 0.0001 CPUs is less than the smallest share, 0.001; give at least 0.001, or leave it unset`,
				`compose.yaml:9: service "web": deploy.resources.reservations.cpus: -1000 millicores is negative`,
			},
		},
		{
			name: "max replicas per node in global mode",
			web:  "    image: busybox\n    deploy:\n      mode: global\n      placement:\n        max_replicas_per_node: 1\n",
			want: []string{`compose.yaml:7: service "web": deploy.placement.max_replicas_per_node: applies only to replicated services: a global service runs one task on each node already; remove it, or use mode: replicated`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeProject(t, map[string]string{"compose.yaml": "services:\n  web:\n" + tt.web})
			p, err := loadDir(t, dir, Options{})
			if err == nil {
				t.Fatalf("Load() = %v, want an error", p)
			}
			var errs validation.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load() error %T %v, want validation.Errors", err, err)
			}
			var got []string
			for _, fe := range errs {
				got = append(got, strings.TrimPrefix(fe.Error(), dir+string(filepath.Separator)))
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Load() problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("problem %d =\n%s\nwant it to start with\n%s", i, got[i], w)
				}
			}
		})
	}
}

// TestLoadDeployErrorInOverrideFile points at the file that sets the key.
func TestLoadDeployErrorInOverrideFile(t *testing.T) {
	dir := writeProject(t, map[string]string{
		"compose.yaml":  "services:\n  web:\n    image: busybox\n    platform: linux/amd64\n",
		"override.yaml": "services:\n  web:\n    deploy:\n      update_config:\n        max_failure_ratio: 2\n    x-berth:\n      strategy: pack\n",
	})
	_, err := loadDir(t, dir, Options{}, "compose.yaml", "override.yaml")
	var errs validation.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Load() error = %v, want validation.Errors", err)
	}
	var got []string
	for _, fe := range errs {
		got = append(got, fmt.Sprintf("%s:%s:%d", filepath.Base(fe.File), fe.Field, fe.Line))
	}
	want := []string{"override.yaml:x-berth.strategy:7", "override.yaml:deploy.update_config.max_failure_ratio:5"}
	if !slices.Equal(got, want) {
		t.Errorf("problems at %q, want %q:\n%v", got, want, err)
	}
}
