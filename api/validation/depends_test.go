package validation

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

const (
	started   = berthv1.DependencyCondition_DEPENDENCY_CONDITION_STARTED
	healthy   = berthv1.DependencyCondition_DEPENDENCY_CONDITION_HEALTHY
	completed = berthv1.DependencyCondition_DEPENDENCY_CONDITION_COMPLETED_SUCCESSFULLY
)

// dependent returns a service named name depending on deps, each written
// "service" (started) or "service:healthy" / "service:completed".
func dependent(name string, deps ...string) *berthv1.Service {
	spec := &berthv1.ServiceSpec{Image: "busybox"}
	for _, d := range deps {
		service, cond, _ := strings.Cut(d, ":")
		c := started
		switch cond {
		case "healthy":
			c = healthy
		case "completed":
			c = completed
		}
		spec.DependsOn = append(spec.DependsOn, &berthv1.Dependency{Service: service, Condition: c})
	}
	return &berthv1.Service{Name: name, Spec: spec}
}

func withHealthCheck(svc *berthv1.Service, hc *berthv1.HealthCheck) *berthv1.Service {
	svc.Spec.Healthcheck = hc
	return svc
}

func TestValidateDependencies(t *testing.T) {
	tests := []struct {
		name     string
		services []*berthv1.Service
		want     []string // error texts, in order; empty means valid
	}{
		{
			name: "valid chain with every condition",
			services: []*berthv1.Service{
				dependent("web", "db:healthy", "migrate:completed", "cache"),
				withHealthCheck(dependent("db"), &berthv1.HealthCheck{Test: []string{"CMD", "true"}}),
				dependent("migrate", "db:healthy"),
				dependent("cache"),
			},
		},
		{
			name: "healthy relies on the image's check when none is set",
			services: []*berthv1.Service{
				dependent("web", "db:healthy"),
				withHealthCheck(dependent("db"), &berthv1.HealthCheck{Interval: nil, Retries: 3}),
			},
		},
		{
			name:     "unknown dependency",
			services: []*berthv1.Service{dependent("web", "dbx")},
			want:     []string{`service "web": depends_on.dbx: there is no service "dbx" in the app; add it, correct the name, or remove it from depends_on`},
		},
		{
			name: "healthy on a disabled check",
			services: []*berthv1.Service{
				dependent("web", "cache:healthy", "db:healthy"),
				withHealthCheck(dependent("db"), &berthv1.HealthCheck{Disable: true}),
				withHealthCheck(dependent("cache"), &berthv1.HealthCheck{Test: []string{"NONE"}}),
			},
			want: []string{
				`service "web": depends_on.cache.condition: service_healthy waits for cache's health check, which is disabled, so web would never start; enable cache's healthcheck or use condition: service_started`,
				`service "web": depends_on.db.condition: service_healthy waits for db's health check, which is disabled`,
			},
		},
		{
			name: "cycle of two",
			services: []*berthv1.Service{
				dependent("web", "db"),
				dependent("db", "web"),
			},
			want: []string{`service "db": depends_on.web: dependency cycle db -> web -> db: none of these services could ever start; remove one of these dependencies`},
		},
		{
			name: "cycle of three beside a valid branch, reported once",
			services: []*berthv1.Service{
				dependent("a", "c", "x"),
				dependent("b", "a"),
				dependent("c", "b"),
				dependent("x"),
				dependent("y", "a"),
			},
			want: []string{`service "a": depends_on.c: dependency cycle a -> c -> b -> a`},
		},
		{
			name: "two cycles",
			services: []*berthv1.Service{
				dependent("a", "b"),
				dependent("b", "a"),
				dependent("c", "d"),
				dependent("d", "c"),
			},
			want: []string{"dependency cycle a -> b -> a", "dependency cycle c -> d -> c"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := ValidateDependencies(tt.services)
			if len(errs) != len(tt.want) {
				t.Fatalf("ValidateDependencies() = %d problems:\n%v\nwant %d: %q", len(errs), errs, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, errs[i].Error(), w)
				}
			}
		})
	}
}

func TestValidateSpecDependencies(t *testing.T) {
	tests := []struct {
		name string
		deps []*berthv1.Dependency
		want []string // "field: reason substring", in order
	}{
		{name: "valid", deps: []*berthv1.Dependency{{Service: "db", Condition: healthy}, {Service: "cache"}}},
		{name: "itself", deps: []*berthv1.Dependency{{Service: "web"}},
			want: []string{"depends_on.web: a service cannot depend on itself"}},
		{name: "twice", deps: []*berthv1.Dependency{{Service: "db"}, {Service: "db", Condition: healthy}},
			want: []string{"depends_on.db: db is listed twice"}},
		{name: "bad name", deps: []*berthv1.Dependency{{Service: "my db"}},
			want: []string{`depends_on[0]: invalid service name "my db"`}},
		{name: "capital letters", deps: []*berthv1.Dependency{{Service: "Db"}}},
		{name: "missing entry", deps: []*berthv1.Dependency{nil},
			want: []string{"depends_on[0]: dependency is missing"}},
		{name: "unknown condition", deps: []*berthv1.Dependency{{Service: "db", Condition: 9}},
			want: []string{"depends_on.db.condition: unknown condition 9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := ValidateSpec("web", &berthv1.ServiceSpec{Image: "busybox", DependsOn: tt.deps})
			if len(errs) != len(tt.want) {
				t.Fatalf("ValidateSpec() = %v, want %q", errs, tt.want)
			}
			for i, w := range tt.want {
				if got := errs[i].Field + ": " + errs[i].Reason; !strings.HasPrefix(got, w) {
					t.Errorf("problem %d = %q, want prefix %q", i, got, w)
				}
			}
		})
	}
}

func TestValidateApplyChecksDependencies(t *testing.T) {
	req := &berthv1.ApplyRequest{Namespace: "default", App: "shop", Services: []*berthv1.Service{
		dependent("web", "db"), dependent("api", "web"),
	}}
	errs := ValidateApply(req)
	if len(errs) != 1 || errs[0].Service != "web" || errs[0].Field != "depends_on.db" {
		t.Fatalf("ValidateApply() = %v, want one problem: web depends on the missing db", errs)
	}
}

func TestNormalizeDependencies(t *testing.T) {
	spec := &berthv1.ServiceSpec{Image: "busybox", DependsOn: []*berthv1.Dependency{
		{Service: "migrate", Condition: completed}, {Service: "cache"}, {Service: "db", Condition: healthy},
	}}
	Normalize(spec)
	want := []*berthv1.Dependency{{Service: "cache", Condition: started}, {Service: "db", Condition: healthy}, {Service: "migrate", Condition: completed}}
	if len(spec.DependsOn) != len(want) {
		t.Fatalf("depends_on = %v, want %v", spec.DependsOn, want)
	}
	for i := range want {
		if !proto.Equal(spec.DependsOn[i], want[i]) {
			t.Errorf("depends_on[%d] = %v, want %v", i, spec.DependsOn[i], want[i])
		}
	}
}

func TestConditionName(t *testing.T) {
	tests := []struct {
		c    berthv1.DependencyCondition
		want string
	}{
		{berthv1.DependencyCondition_DEPENDENCY_CONDITION_UNSPECIFIED, "service_started"},
		{started, "service_started"},
		{healthy, "service_healthy"},
		{completed, "service_completed_successfully"},
		{7, "condition 7"},
	}
	for _, tt := range tests {
		if got := ConditionName(tt.c); got != tt.want {
			t.Errorf("ConditionName(%v) = %q, want %q", tt.c, got, tt.want)
		}
	}
}
