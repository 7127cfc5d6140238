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

// berthExtension is the service-level block for what Berth offers beyond
// the Compose specification, like x-berth: {strategy: binpack}.
const berthExtension = "x-berth"

// strategies are the values of x-berth.strategy.
var strategies = map[string]berthv1.SchedulingStrategy{
	"spread":  berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_SPREAD,
	"binpack": berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK,
}

// extensionKeys are the keys x-berth allows, each with the function that
// applies its value to a spec. A key the loader hands over that is not
// here is an error, not a warning: a misspelt key in Berth's own block
// would otherwise be ignored without a word.
var extensionKeys = map[string]func(spec *berthv1.ServiceSpec, v any) error{
	"strategy":              setStrategy,
	"allow-vulnerabilities": setAllowVulnerabilities,
}

// applyExtension reads the service's x-berth block into spec. Problems
// have Service and Field set.
func applyExtension(svc types.ServiceConfig, spec *berthv1.ServiceSpec) validation.Errors {
	raw, ok := svc.Extensions[berthExtension]
	if !ok || raw == nil {
		return nil
	}
	fail := func(field, reason string) validation.Errors {
		return validation.Errors{{Service: svc.Name, Field: field, Reason: reason}}
	}
	block, ok := raw.(map[string]any)
	if !ok {
		return fail(berthExtension, fmt.Sprintf("must be a mapping of %s, like x-berth: {strategy: binpack}", allowedKeys()))
	}
	var errs validation.Errors
	for _, key := range slices.Sorted(maps.Keys(block)) {
		field := berthExtension + "." + key
		apply, ok := extensionKeys[key]
		if !ok {
			errs = append(errs, fail(field, fmt.Sprintf("unknown key %q; %s allows %s", key, berthExtension, allowedKeys()))...)
			continue
		}
		if err := apply(spec, block[key]); err != nil {
			errs = append(errs, fail(field, err.Error())...)
		}
	}
	return errs
}

// allowedKeys lists the keys of x-berth for a message.
func allowedKeys() string {
	return strings.Join(slices.Sorted(maps.Keys(extensionKeys)), ", ")
}

// setStrategy reads x-berth.strategy.
func setStrategy(spec *berthv1.ServiceSpec, v any) error {
	s, _ := v.(string)
	st, ok := strategies[strings.ToLower(strings.TrimSpace(s))]
	if !ok {
		return fmt.Errorf("%v is not a strategy; use spread or binpack", quoteValue(v))
	}
	spec.Strategy = st
	return nil
}

// quoteValue shows a value from the file: strings quoted, others as is.
func quoteValue(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v)
}

// setAllowVulnerabilities reads x-berth.allow-vulnerabilities: the ids
// (CVE-..., GHSA-..., DSA-...) the scan gate accepts for the service.
func setAllowVulnerabilities(spec *berthv1.ServiceSpec, v any) error {
	list, ok := v.([]any)
	if !ok {
		return fmt.Errorf("must be a list of vulnerability ids, like [CVE-2024-1234]; got %v", quoteValue(v))
	}
	spec.AllowVulnerabilities = nil
	for i, item := range list {
		id, _ := item.(string)
		id = strings.TrimSpace(id)
		if id == "" || strings.ContainsAny(id, " \t,") {
			return fmt.Errorf("item %d, %v, is not a vulnerability id; write ids like CVE-2024-1234 or GHSA-xxxx-xxxx-xxxx, one an item", i, quoteValue(item))
		}
		spec.AllowVulnerabilities = append(spec.AllowVulnerabilities, id)
	}
	return nil
}
