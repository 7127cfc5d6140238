package validation

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// ConditionName is how a Compose file writes c: service_started,
// service_healthy or service_completed_successfully.
func ConditionName(c berthv1.DependencyCondition) string {
	switch c {
	case berthv1.DependencyCondition_DEPENDENCY_CONDITION_UNSPECIFIED, berthv1.DependencyCondition_DEPENDENCY_CONDITION_STARTED:
		return "service_started"
	case berthv1.DependencyCondition_DEPENDENCY_CONDITION_HEALTHY:
		return "service_healthy"
	case berthv1.DependencyCondition_DEPENDENCY_CONDITION_COMPLETED_SUCCESSFULLY:
		return "service_completed_successfully"
	}
	return fmt.Sprintf("condition %d", c)
}

// normalizeDependencies reads an unset condition as started, and sorts the
// entries by service so equal specs compare equal: Compose writes
// depends_on as a mapping, whose order means nothing.
func normalizeDependencies(spec *berthv1.ServiceSpec) {
	for _, d := range spec.DependsOn {
		if d != nil && d.Condition == berthv1.DependencyCondition_DEPENDENCY_CONDITION_UNSPECIFIED {
			d.Condition = berthv1.DependencyCondition_DEPENDENCY_CONDITION_STARTED
		}
	}
	slices.SortStableFunc(spec.DependsOn, func(a, b *berthv1.Dependency) int {
		return strings.Compare(a.GetService(), b.GetService())
	})
}

// dependencies checks the entries of one service's depends_on on their own;
// ValidateDependencies checks them against the app's other services.
func (v *specValidator) dependencies(deps []*berthv1.Dependency) {
	seen := make(map[string]bool, len(deps))
	for i, d := range deps {
		if d == nil {
			v.add(fmt.Sprintf("depends_on[%d]", i), "dependency is missing")
			continue
		}
		name := d.GetService()
		field := "depends_on." + name
		if err := ValidateServiceName(name); err != nil {
			v.add(fmt.Sprintf("depends_on[%d]", i), err.Error())
			continue
		}
		switch {
		case name == v.service:
			v.add(field, "a service cannot depend on itself; remove it from depends_on")
		case seen[name]:
			v.add(field, fmt.Sprintf("%s is listed twice; keep one entry", name))
		}
		seen[name] = true
		switch d.GetCondition() {
		case berthv1.DependencyCondition_DEPENDENCY_CONDITION_UNSPECIFIED, berthv1.DependencyCondition_DEPENDENCY_CONDITION_STARTED,
			berthv1.DependencyCondition_DEPENDENCY_CONDITION_HEALTHY, berthv1.DependencyCondition_DEPENDENCY_CONDITION_COMPLETED_SUCCESSFULLY:
		default:
			v.add(field+".condition", fmt.Sprintf("unknown condition %d; use service_started, service_healthy or service_completed_successfully", d.GetCondition()))
		}
	}
}

// ValidateDependencies checks the depends_on of an app's services against
// each other: every dependency names a service of the app, a dependency
// waited on until healthy has a health check that is not disabled, and
// no service waits, directly or not, for itself. Problems are reported on
// the depending service, field depends_on.<dependency>. A dependency on a
// service whose health check is simply unset is accepted: the image's
// HEALTHCHECK applies, which only the node running it can read.
func ValidateDependencies(services []*berthv1.Service) Errors {
	specs := make(map[string]*berthv1.ServiceSpec, len(services))
	for _, s := range services {
		if s != nil {
			specs[s.GetName()] = s.GetSpec()
		}
	}
	var errs Errors
	names := slices.Sorted(maps.Keys(specs))
	for _, name := range names {
		for _, d := range specs[name].GetDependsOn() {
			dep := d.GetService()
			if dep == "" || dep == name {
				continue // ValidateSpec reports these
			}
			field := "depends_on." + dep
			target, ok := specs[dep]
			switch {
			case !ok:
				errs = append(errs, FieldError{Service: name, Field: field, Reason: fmt.Sprintf(
					"there is no service %q in the app; add it, correct the name, or remove it from depends_on (with Compose's long syntax, required: false skips a missing service)", dep)})
			case d.GetCondition() == berthv1.DependencyCondition_DEPENDENCY_CONDITION_HEALTHY && HealthCheckDisabled(target.GetHealthcheck()):
				errs = append(errs, FieldError{Service: name, Field: field + ".condition", Reason: fmt.Sprintf(
					"service_healthy waits for %s's health check, which is disabled, so %s would never start; enable %s's healthcheck or use condition: service_started", dep, name, dep)})
			}
		}
	}
	for _, cycle := range dependencyCycles(names, specs) {
		first, next := cycle[0], cycle[1]
		errs = append(errs, FieldError{Service: first, Field: "depends_on." + next, Reason: fmt.Sprintf(
			"dependency cycle %s: none of these services could ever start; remove one of these dependencies", strings.Join(cycle, " -> "))})
	}
	return errs
}

// HealthCheckDisabled reports whether hc turns every check off, the image's
// included: disable: true, or test: ["NONE"].
func HealthCheckDisabled(hc *berthv1.HealthCheck) bool {
	return hc.GetDisable() || (len(hc.GetTest()) > 0 && hc.GetTest()[0] == "NONE")
}

// dependencyCycles returns each cycle of the depends_on graph once, as the
// services on it with the first repeated at the end (web -> db -> web),
// starting from the smallest name so the report does not depend on map
// order. names is sorted.
func dependencyCycles(names []string, specs map[string]*berthv1.ServiceSpec) [][]string {
	const (
		unseen = iota
		onPath
		done
	)
	state := make(map[string]int, len(names))
	var (
		path   []string
		cycles [][]string
		seen   = map[string]bool{}
	)
	var visit func(name string)
	visit = func(name string) {
		state[name] = onPath
		path = append(path, name)
		for _, d := range specs[name].GetDependsOn() {
			dep := d.GetService()
			if _, ok := specs[dep]; !ok || dep == name {
				continue // unknown, or itself: reported on their own
			}
			switch state[dep] {
			case unseen:
				visit(dep)
			case onPath:
				start := slices.Index(path, dep)
				cycle := rotateToSmallest(path[start:])
				if key := strings.Join(cycle, " "); !seen[key] {
					seen[key] = true
					cycles = append(cycles, append(cycle, cycle[0]))
				}
			}
		}
		path = path[:len(path)-1]
		state[name] = done
	}
	for _, name := range names {
		if state[name] == unseen {
			visit(name)
		}
	}
	return cycles
}

// rotateToSmallest returns a copy of cycle starting at its smallest name.
func rotateToSmallest(cycle []string) []string {
	i := slices.Index(cycle, slices.Min(cycle))
	return append(slices.Clone(cycle[i:]), cycle[:i]...)
}
