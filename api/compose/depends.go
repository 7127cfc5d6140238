package compose

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
)

// conditions maps Compose's depends_on conditions onto Berth's.
var conditions = map[string]berthv1.DependencyCondition{
	types.ServiceConditionStarted:               berthv1.DependencyCondition_DEPENDENCY_CONDITION_STARTED,
	types.ServiceConditionHealthy:               berthv1.DependencyCondition_DEPENDENCY_CONDITION_HEALTHY,
	types.ServiceConditionCompletedSuccessfully: berthv1.DependencyCondition_DEPENDENCY_CONDITION_COMPLETED_SUCCESSFULLY,
}

// dependencies converts svc's depends_on. The loader has already turned the
// short syntax (a list of names) into service_started entries that are
// required. As in Compose, a dependency marked required: false on a service
// the project does not run is dropped. A required one on a service that
// its profiles disable is an error here; one on a service that does not
// exist at all is kept, for validation.ValidateDependencies to report with
// the app's other dependency problems. restart: (restart the dependent
// when the dependency restarts) is warned about by the loader's check.
func dependencies(svc types.ServiceConfig, project *types.Project) ([]*berthv1.Dependency, validation.Errors) {
	var (
		deps []*berthv1.Dependency
		errs validation.Errors
	)
	for _, name := range slices.Sorted(maps.Keys(svc.DependsOn)) {
		d := svc.DependsOn[name]
		field := "depends_on." + name
		_, enabled := project.Services[name]
		if !enabled && !d.Required {
			continue
		}
		if disabled, ok := project.DisabledServices[name]; ok && !enabled {
			errs = append(errs, validation.FieldError{Service: svc.Name, Field: field, Reason: fmt.Sprintf(
				"%s is not enabled: it runs only with the profile %s; enable it with --profile %s, or set required: false on this dependency",
				name, strings.Join(disabled.Profiles, " or "), disabled.Profiles[0])})
			continue
		}
		cond := d.Condition
		if cond == "" {
			cond = types.ServiceConditionStarted
		}
		c, ok := conditions[cond]
		if !ok {
			errs = append(errs, validation.FieldError{Service: svc.Name, Field: field + ".condition", Reason: fmt.Sprintf(
				"unknown condition %q; use service_started, service_healthy or service_completed_successfully", d.Condition)})
			continue
		}
		deps = append(deps, &berthv1.Dependency{Service: name, Condition: c})
	}
	return deps, errs
}

// imageHealthWarnings warns about each service_healthy dependency on a
// service whose file sets no health check: only its image's HEALTHCHECK
// can make it healthy, and without one the dependent waits for good. The
// CLI cannot read the image (it lives on the nodes), so this is a warning,
// not an error.
func imageHealthWarnings(services []*berthv1.Service, srcs sources) []string {
	specs := make(map[string]*berthv1.ServiceSpec, len(services))
	for _, s := range services {
		specs[s.GetName()] = s.GetSpec()
	}
	var out []string
	for _, s := range services {
		for _, d := range s.GetSpec().GetDependsOn() {
			target, ok := specs[d.GetService()]
			if !ok || d.GetCondition() != berthv1.DependencyCondition_DEPENDENCY_CONDITION_HEALTHY || setsHealthCheck(target.GetHealthcheck()) {
				continue
			}
			file, _ := srcs.locate("services", s.GetName(), "depends_on", d.GetService())
			out = append(out, fmt.Sprintf(
				"%s: service %q: depends_on.%s: %s sets no healthcheck, so service_healthy relies on the HEALTHCHECK of its image %s; without one, %s never starts",
				file, s.GetName(), d.GetService(), d.GetService(), target.GetImage(), s.GetName()))
		}
	}
	return out
}

// setsHealthCheck reports whether hc says how to probe, rather than leaving
// it to the image.
func setsHealthCheck(hc *berthv1.HealthCheck) bool {
	return len(hc.GetTest()) > 0 || hc.GetDisable() || hc.GetHttpPort() > 0 || hc.GetTcpPort() > 0
}
