package compose

import (
	"fmt"
	"maps"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"google.golang.org/protobuf/types/known/durationpb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
)

// converted is one service turned into a spec, with what went wrong.
type converted struct {
	spec *berthv1.ServiceSpec
	// errs have Service and Field set; the caller adds the file.
	errs validation.Errors
	// overridden names keys set but superseded by another key.
	overridden []string
	// mountFields are the Compose fields of spec.Mounts, by index.
	mountFields []string
}

// convertService maps the supported keys of a loaded Compose service onto
// a ServiceSpec. Unsupported keys are reported by the loader, not here.
func convertService(svc types.ServiceConfig) converted {
	c := converted{spec: &berthv1.ServiceSpec{
		Image:           svc.Image,
		Command:         cloneStrings(svc.Command),
		Entrypoint:      cloneStrings(svc.Entrypoint),
		Env:             env(svc.Environment),
		WorkingDir:      svc.WorkingDir,
		User:            svc.User,
		StopSignal:      svc.StopSignal,
		StopGracePeriod: duration(svc.StopGracePeriod),
		Replicas:        1,
	}}
	if len(svc.Labels) > 0 {
		c.spec.Labels = maps.Clone(map[string]string(svc.Labels))
	}
	fail := func(field, reason string) {
		c.errs = append(c.errs, validation.FieldError{Service: svc.Name, Field: field, Reason: reason})
	}
	for i, p := range svc.Ports {
		port, err := convertPort(p)
		if err != nil {
			fail(fmt.Sprintf("ports[%d].published", i), err.Error())
			continue
		}
		if port.Mode, err = publishMode(p.Mode); err != nil {
			fail(fmt.Sprintf("ports[%d].mode", i), err.Error())
		}
		if port.PublishedEnd != 0 {
			// compose-go says ingress when the file says nothing.
			port.Mode = berthv1.PublishMode_PUBLISH_MODE_HOST
		}
		c.spec.Ports = append(c.spec.Ports, port)
	}
	c.convertEndpoint(svc)
	c.convertContainer(svc)
	c.convertLogging(svc)
	if svc.Scale != nil {
		c.setReplicas(svc.Name, "scale", *svc.Scale)
	}
	if svc.HealthCheck != nil {
		hc, err := healthCheck(svc.HealthCheck)
		if err != nil {
			fail("healthcheck", err.Error())
		}
		c.spec.Healthcheck = hc
	}
	if svc.Restart != "" {
		rp, err := restartPolicy(svc.Restart)
		if err != nil {
			fail("restart", err.Error())
		}
		c.spec.RestartPolicy = rp
	}
	if svc.Platform != "" {
		p, err := validation.ParsePlatform(svc.Platform)
		if err != nil {
			fail("platform", err.Error())
		} else {
			c.spec.Placement = &berthv1.Placement{Platforms: []*berthv1.Platform{p}}
		}
	}
	c.errs = append(c.errs, applyExtension(svc, c.spec)...)
	d := svc.Deploy
	if d == nil {
		return c
	}
	switch d.Mode {
	case "", "replicated":
		c.spec.Mode = berthv1.ServiceMode_SERVICE_MODE_REPLICATED
	case "global":
		c.spec.Mode = berthv1.ServiceMode_SERVICE_MODE_GLOBAL
	default:
		fail("deploy.mode", fmt.Sprintf("mode %q is not supported; use replicated or global", d.Mode))
	}
	if d.Replicas != nil {
		if svc.Scale != nil && *svc.Scale != *d.Replicas {
			fail("deploy.replicas", fmt.Sprintf("%d differs from scale: %d; set only one of them", *d.Replicas, *svc.Scale))
		}
		c.setReplicas(svc.Name, "deploy.replicas", *d.Replicas)
	}
	c.spec.Limits = resources(d.Resources.Limits)
	c.spec.Reservations = resources(d.Resources.Reservations)
	for _, res := range []struct {
		field string
		r     *types.Resource
	}{{"limits", d.Resources.Limits}, {"reservations", d.Resources.Reservations}} {
		// A share this small rounds to no CPU at all, which would read as
		// no limit (or no reservation).
		if r := res.r; r != nil && r.NanoCPUs > 0 && milliCPUs(r.NanoCPUs) == 0 {
			fail("deploy.resources."+res.field+".cpus", fmt.Sprintf("%g CPUs is less than the smallest share, 0.001; give at least 0.001, or leave it unset", r.NanoCPUs.Value()))
		}
	}
	if pl := d.Placement; len(pl.Constraints) > 0 || len(pl.Preferences) > 0 || pl.MaxReplicas > 0 {
		if c.spec.Placement == nil {
			c.spec.Placement = &berthv1.Placement{}
		}
		c.spec.Placement.Constraints = cloneStrings(pl.Constraints)
		for _, p := range pl.Preferences {
			c.spec.Placement.Preferences = append(c.spec.Placement.Preferences, p.Spread)
		}
		c.spec.Placement.MaxReplicasPerNode = pl.MaxReplicas
	}
	var errs validation.Errors
	c.spec.UpdateConfig, errs = updateConfig(svc.Name, "deploy.update_config", d.UpdateConfig)
	c.errs = append(c.errs, errs...)
	c.spec.RollbackConfig, errs = updateConfig(svc.Name, "deploy.rollback_config", d.RollbackConfig)
	c.errs = append(c.errs, errs...)
	if rp := d.RestartPolicy; rp != nil {
		if svc.Restart != "" {
			c.overridden = append(c.overridden, "restart")
		}
		c.spec.RestartPolicy = &berthv1.RestartPolicy{
			Delay:  duration(rp.Delay),
			Window: duration(rp.Window),
		}
		if rp.MaxAttempts != nil {
			c.spec.RestartPolicy.MaxAttempts = *rp.MaxAttempts
		}
		switch rp.Condition {
		case "":
		case "any":
			c.spec.RestartPolicy.Condition = berthv1.RestartCondition_RESTART_CONDITION_ANY
		case "on-failure":
			c.spec.RestartPolicy.Condition = berthv1.RestartCondition_RESTART_CONDITION_ON_FAILURE
		case "none":
			c.spec.RestartPolicy.Condition = berthv1.RestartCondition_RESTART_CONDITION_NONE
		default:
			fail("deploy.restart_policy.condition", fmt.Sprintf("unknown condition %q; use none, on-failure or any", rp.Condition))
		}
	}
	return c
}

func (c *converted) setReplicas(service, field string, n int) {
	if n < 0 {
		c.errs = append(c.errs, validation.FieldError{Service: service, Field: field, Reason: fmt.Sprintf("%d is negative; use 0 or more replicas", n)})
		return
	}
	c.spec.Replicas = uint64(n)
}

func cloneStrings(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return append([]string(nil), s...)
}

// env turns the resolved environment into KEY=VALUE entries. A variable
// listed without a value and not found in the environment has no value to
// pass, so it is left out, as Compose does.
func env(m types.MappingWithEquals) []string {
	var out []string
	for k, v := range m {
		if v != nil {
			out = append(out, k+"="+*v)
		}
	}
	return out
}

func duration(d *types.Duration) *durationpb.Duration {
	if d == nil {
		return nil
	}
	return durationpb.New(time.Duration(*d))
}

func resources(r *types.Resource) *berthv1.Resources {
	if r == nil || (r.NanoCPUs == 0 && r.MemoryBytes == 0) {
		return nil
	}
	return &berthv1.Resources{
		MilliCpus:   milliCPUs(r.NanoCPUs),
		MemoryBytes: int64(r.MemoryBytes),
	}
}

// milliCPUs turns a CPU count into the nearest number of millicores.
func milliCPUs(n types.NanoCPUs) int64 {
	return int64(math.Round(float64(n.Value()) * 1000))
}

// convertPort maps one (already expanded) port. The loader keeps the
// published side as text: a single port, or a range of host ports for a
// single container port ("6005-6015:80"), as Swarm stack files give
// replicas in host mode: each task takes a free port of the range on its
// node. A range is published in host mode whatever the file says.
func convertPort(p types.ServicePortConfig) (*berthv1.PortSpec, error) {
	port := &berthv1.PortSpec{Target: p.Target, Protocol: strings.ToLower(p.Protocol), HostIp: p.HostIP}
	published, end, isRange := strings.Cut(p.Published, "-")
	if published != "" {
		n, err := strconv.ParseUint(published, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%q is not a port number", p.Published)
		}
		port.Published = uint32(n)
	}
	if isRange && end != published {
		n, err := strconv.ParseUint(end, 10, 32)
		if err != nil || published == "" {
			return nil, fmt.Errorf("%q is not a range of ports, like 6005-6015", p.Published)
		}
		port.PublishedEnd = uint32(n)
	}
	return port, nil
}

// restartPolicy maps the service-level restart key.
func restartPolicy(restart string) (*berthv1.RestartPolicy, error) {
	switch restart {
	case "no":
		return &berthv1.RestartPolicy{Condition: berthv1.RestartCondition_RESTART_CONDITION_NONE}, nil
	case "always", "unless-stopped":
		return &berthv1.RestartPolicy{Condition: berthv1.RestartCondition_RESTART_CONDITION_ANY}, nil
	}
	attempts, found := strings.CutPrefix(restart, "on-failure")
	if !found || (attempts != "" && !strings.HasPrefix(attempts, ":")) {
		return nil, fmt.Errorf("unknown restart policy %q; use no, always, unless-stopped, on-failure or on-failure:N", restart)
	}
	rp := &berthv1.RestartPolicy{Condition: berthv1.RestartCondition_RESTART_CONDITION_ON_FAILURE}
	if attempts != "" {
		n, err := strconv.ParseUint(attempts[1:], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q: the number of attempts after on-failure: must be a whole number, like on-failure:3", restart)
		}
		rp.MaxAttempts = n
	}
	return rp, nil
}

// healthCheck converts a Compose healthcheck, with Berth's extensions
// x-berth-http {port, path} and x-berth-tcp {port} for probes that need
// no command in the container.
func healthCheck(hc *types.HealthCheckConfig) (*berthv1.HealthCheck, error) {
	out := &berthv1.HealthCheck{
		Test:          cloneStrings(hc.Test),
		Interval:      duration(hc.Interval),
		Timeout:       duration(hc.Timeout),
		StartPeriod:   duration(hc.StartPeriod),
		StartInterval: duration(hc.StartInterval),
		Disable:       hc.Disable,
	}
	if hc.Retries != nil {
		out.Retries = uint32(*hc.Retries)
	}
	if ext, ok := hc.Extensions["x-berth-http"]; ok {
		m, ok := ext.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("x-berth-http must be a mapping with port and path")
		}
		port, err := extensionPort(m["port"])
		if err != nil {
			return nil, fmt.Errorf("x-berth-http.port: %w", err)
		}
		out.HttpPort = port
		out.HttpPath = "/"
		if p, ok := m["path"].(string); ok && p != "" {
			out.HttpPath = p
		}
	}
	if ext, ok := hc.Extensions["x-berth-tcp"]; ok {
		m, ok := ext.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("x-berth-tcp must be a mapping with port")
		}
		port, err := extensionPort(m["port"])
		if err != nil {
			return nil, fmt.Errorf("x-berth-tcp.port: %w", err)
		}
		out.TcpPort = port
	}
	return out, nil
}

// extensionPort reads a port number from an extension value, which the
// loader may hand over as an int, a float or a string.
func extensionPort(v any) (uint32, error) {
	var n int64
	switch p := v.(type) {
	case int:
		n = int64(p)
	case int64:
		n = p
	case uint64:
		n = int64(p)
	case float64:
		n = int64(p)
	case string:
		if _, err := fmt.Sscanf(p, "%d", &n); err != nil {
			return 0, fmt.Errorf("%q is not a port number", p)
		}
	default:
		return 0, fmt.Errorf("a port number (1-65535) is required")
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("%d is out of range 1-65535", n)
	}
	return uint32(n), nil
}
