package compose

import (
	"errors"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
)

func TestLoadDependsOn(t *testing.T) {
	const (
		started   = berthv1.DependencyCondition_DEPENDENCY_CONDITION_STARTED
		healthy   = berthv1.DependencyCondition_DEPENDENCY_CONDITION_HEALTHY
		completed = berthv1.DependencyCondition_DEPENDENCY_CONDITION_COMPLETED_SUCCESSFULLY
	)
	tests := []struct {
		name    string
		compose string
		opts    Options
		// want is web's depends_on, as service=condition.
		want map[string]berthv1.DependencyCondition
		// warnings are substrings of the warnings, in order; none others.
		warnings []string
	}{
		{
			name: "short syntax waits for started",
			compose: `
services:
  web: {image: busybox, depends_on: [db, cache]}
  db: {image: busybox}
  cache: {image: busybox}
`,
			want: map[string]berthv1.DependencyCondition{"cache": started, "db": started},
		},
		{
			name: "long syntax with every condition",
			compose: `
services:
  web:
    image: busybox
    depends_on:
      db: {condition: service_healthy}
      migrate: {condition: service_completed_successfully}
      cache: {condition: service_started, required: true}
  db:
    image: busybox
    healthcheck: {test: ["CMD", "true"]}
  migrate: {image: busybox, restart: "no"}
  cache: {image: busybox}
`,
			want: map[string]berthv1.DependencyCondition{"cache": started, "db": healthy, "migrate": completed},
		},
		{
			name: "optional dependency on a missing or disabled service is dropped",
			compose: `
services:
  web:
    image: busybox
    depends_on:
      db: {condition: service_started}
      metrics: {condition: service_started, required: false}
      debug: {condition: service_started, required: false}
  db: {image: busybox}
  debug: {image: busybox, profiles: [debug]}
`,
			want: map[string]berthv1.DependencyCondition{"db": started},
		},
		{
			name: "a dependency enabled by its profile",
			compose: `
services:
  web: {image: busybox, depends_on: [debug]}
  debug: {image: busybox, profiles: [debug]}
`,
			opts: Options{Profiles: []string{"debug"}},
			want: map[string]berthv1.DependencyCondition{"debug": started},
		},
		{
			name: "restart is warned about and ignored",
			compose: `
services:
  web:
    image: busybox
    depends_on:
      db: {condition: service_started, restart: true}
  db: {image: busybox}
`,
			want:     map[string]berthv1.DependencyCondition{"db": started},
			warnings: []string{`compose.yaml: service "web": depends_on.db.restart is not supported yet and is ignored`},
		},
		{
			name: "healthy on the image's HEALTHCHECK is warned about",
			compose: `
services:
  web:
    image: busybox
    depends_on:
      db: {condition: service_healthy}
  db:
    image: localhost/db:1
    healthcheck: {interval: 1s}
`,
			want: map[string]berthv1.DependencyCondition{"db": healthy},
			warnings: []string{
				`compose.yaml: service "web": depends_on.db: db sets no healthcheck, so service_healthy relies on the HEALTHCHECK of its image localhost/db:1; without one, web never starts`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeProject(t, map[string]string{"compose.yaml": tt.compose})
			p, err := loadDir(t, dir, tt.opts)
			if err != nil {
				t.Fatalf("Load() error:\n%v", err)
			}
			got := map[string]berthv1.DependencyCondition{}
			for _, s := range p.Services {
				if s.GetName() != "web" {
					continue
				}
				for _, d := range s.GetSpec().GetDependsOn() {
					got[d.GetService()] = d.GetCondition()
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("web depends_on = %v, want %v", got, tt.want)
			}
			for name, c := range tt.want {
				if got[name] != c {
					t.Errorf("web depends_on %s = %v, want %v", name, got[name], c)
				}
			}
			if len(p.Warnings) != len(tt.warnings) {
				t.Fatalf("Warnings =\n%s\nwant %d: %q", strings.Join(p.Warnings, "\n"), len(tt.warnings), tt.warnings)
			}
			for i, w := range tt.warnings {
				if !strings.Contains(p.Warnings[i], w) {
					t.Errorf("warning %d = %q, want it to contain %q", i, p.Warnings[i], w)
				}
			}
		})
	}
}

func TestLoadDependsOnErrors(t *testing.T) {
	tests := []struct {
		name    string
		compose string
		// want are the problems, each with file and line, in order.
		want []string
	}{
		{
			name:    "unknown service",
			compose: "services:\n  web:\n    image: busybox\n    depends_on: [dbx]\n",
			want:    []string{`compose.yaml:4: service "web": depends_on.dbx: there is no service "dbx" in the app; add it, correct the name, or remove it from depends_on`},
		},
		{
			name:    "unknown service in the long syntax",
			compose: "services:\n  web:\n    image: busybox\n    depends_on:\n      dbx:\n        condition: service_started\n",
			want:    []string{`compose.yaml:5: service "web": depends_on.dbx: there is no service "dbx"`},
		},
		{
			name: "cycle",
			compose: `services:
  web:
    image: busybox
    depends_on: [api]
  api:
    image: busybox
    depends_on:
      web: {condition: service_healthy}
`,
			want: []string{`compose.yaml:8: service "api": depends_on.web: dependency cycle api -> web -> api: none of these services could ever start; remove one of these dependencies`},
		},
		{
			name: "healthy on a disabled health check",
			compose: `services:
  web:
    image: busybox
    depends_on:
      db:
        condition: service_healthy
  db:
    image: busybox
    healthcheck: {disable: true}
`,
			want: []string{`compose.yaml:6: service "web": depends_on.db.condition: service_healthy waits for db's health check, which is disabled, so web would never start; enable db's healthcheck or use condition: service_started`},
		},
		{
			name:    "required dependency disabled by its profile",
			compose: "services:\n  web:\n    image: busybox\n    depends_on: [debug]\n  debug:\n    image: busybox\n    profiles: [debug, dev]\n",
			want:    []string{`compose.yaml:4: service "web": depends_on.debug: debug is not enabled: it runs only with the profile debug or dev; enable it with --profile debug, or set required: false on this dependency`},
		},
		{
			name:    "itself",
			compose: "services:\n  web:\n    image: busybox\n    depends_on: [web]\n",
			want:    []string{`compose.yaml:4: service "web": depends_on.web: a service cannot depend on itself; remove it from depends_on`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeProject(t, map[string]string{"compose.yaml": tt.compose})
			p, err := loadDir(t, dir, Options{})
			if err == nil {
				t.Fatalf("Load() = %v, want an error", p)
			}
			var errs validation.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load() error %T %v, want validation.Errors", err, err)
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("Load() error:\n%v\nwant %d problems: %q", err, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				// Files are shown by their full path here.
				if got := strings.TrimPrefix(errs[i].Error(), dir+"/"); !strings.HasPrefix(got, w) {
					t.Errorf("problem %d = %q, want prefix %q", i, got, w)
				}
			}
		})
	}
}
