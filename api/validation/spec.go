package validation

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/durationpb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/constraint"
	"github.com/berthproject/berth/api/imageref"
)

// maxNameLength keeps names usable as DNS labels.
const maxNameLength = 63

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// ValidateName checks the name of a namespace, app or service (kind says
// which): 1 to 63 lowercase letters, digits, '-' and '_', starting with a
// letter or digit. The error suggests a valid name.
func ValidateName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%s name is empty; give a name of lowercase letters, digits, '-' and '_'", kind)
	}
	if len(name) <= maxNameLength && nameRE.MatchString(name) {
		return nil
	}
	msg := fmt.Sprintf("invalid %s name %q: use at most %d lowercase letters, digits, '-' and '_', starting with a letter or digit", kind, name, maxNameLength)
	if s := suggestName(name); s != "" {
		msg += fmt.Sprintf(", for example %q", s)
	}
	return fmt.Errorf("%s", msg)
}

// suggestName turns name into a valid one, or returns "" when nothing of it
// is usable.
func suggestName(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteRune('-')
		}
	}
	s := strings.TrimLeft(b.String(), "-_")
	if len(s) > maxNameLength {
		s = s[:maxNameLength]
	}
	return s
}

// serviceNameRE is a service name: like other names, but Compose allows
// upper-case letters in it.
var serviceNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]*$`)

// ValidateServiceName checks a service's name: 1 to 63 letters (of
// either case, as Compose allows), digits and '-', starting and ending
// with a letter or digit, so that other services can look it up by DNS,
// where case does not count (ServiceNameKey).
func ValidateServiceName(name string) error {
	if err := validateServiceChars(name); err != nil {
		return err
	}
	return validateServiceDNS(name)
}

// validateServiceChars is ValidateName for a service: the characters any
// name may hold, and upper-case letters.
func validateServiceChars(name string) error {
	if name == "" {
		return fmt.Errorf("service name is empty; give a name of letters, digits and '-'")
	}
	if len(name) <= maxNameLength && serviceNameRE.MatchString(name) {
		return nil
	}
	msg := fmt.Sprintf("invalid service name %q: use at most %d letters, digits, '-' and '_', starting with a letter or digit", name, maxNameLength)
	if s := suggestName(name); s != "" {
		msg += fmt.Sprintf(", for example %q", s)
	}
	return fmt.Errorf("%s", msg)
}

// validateServiceDNS checks that a service can be looked up by its name.
func validateServiceDNS(name string) error {
	if isDNSLabel(ServiceNameKey(name)) {
		return nil
	}
	msg := fmt.Sprintf("service name %q is not a valid DNS name, which other services look it up by: use at most 63 letters, digits and '-', starting and ending with a letter or digit", name)
	if s := suggestDNSLabel(name); s != "" && s != ServiceNameKey(name) {
		msg += fmt.Sprintf(", for example %q", s)
	}
	return fmt.Errorf("%s", msg)
}

// ServiceNameKey is what tells service names apart: DNS names do not
// tell case apart, so neither may two services of an app.
func ServiceNameKey(name string) string { return strings.ToLower(name) }

// ValidateServiceNames reports names that differ only in case, which
// would be one DNS name. names are in the order problems are reported;
// a name given twice exactly is left to the caller.
func ValidateServiceNames(names []string) Errors {
	var errs Errors
	first := make(map[string]string, len(names))
	for _, name := range names {
		key := ServiceNameKey(name)
		other, seen := first[key]
		switch {
		case !seen:
			first[key] = name
		case other != name:
			errs = append(errs, FieldError{Service: name, Reason: fmt.Sprintf("the name differs from service %q only in case, and DNS names do not tell case apart; rename one of them", other)})
		}
	}
	return errs
}

// ValidateApply checks a whole Apply request: the namespace and app names,
// every service's name (present, valid as a name and as a DNS label, not
// repeated, in any case) and spec, the services' dependencies on each
// other, the app's networks and the services' use of them
// (ValidateNetworks), and its volumes, secrets and configs and the
// services' use of them (ValidateStorage).
func ValidateApply(req *berthv1.ApplyRequest) Errors {
	var errs Errors
	if err := ValidateName("namespace", req.GetNamespace()); err != nil {
		errs = append(errs, FieldError{Field: "namespace", Reason: err.Error()})
	}
	if err := ValidateName("app", req.GetApp()); err != nil {
		errs = append(errs, FieldError{Field: "app", Reason: err.Error()})
	}
	seen := make(map[string]bool, len(req.GetServices()))
	var names []string
	for i, svc := range req.GetServices() {
		if svc == nil {
			errs = append(errs, FieldError{Field: fmt.Sprintf("services[%d]", i), Reason: "service is missing"})
			continue
		}
		name := svc.GetName()
		if err := validateServiceChars(name); err != nil {
			errs = append(errs, FieldError{Field: fmt.Sprintf("services[%d].name", i), Reason: err.Error()})
			continue
		}
		if err := validateServiceDNS(name); err != nil {
			errs = append(errs, FieldError{Service: name, Reason: err.Error()})
		}
		if seen[name] {
			errs = append(errs, FieldError{Service: name, Reason: "service is defined twice; give each service a distinct name"})
			continue
		}
		seen[name] = true
		names = append(names, name)
		if svc.GetSpec() == nil {
			errs = append(errs, FieldError{Service: name, Field: "spec", Reason: "spec is missing"})
			continue
		}
		errs = append(errs, ValidateSpec(name, svc.GetSpec())...)
	}
	errs = append(errs, ValidateServiceNames(names)...)
	errs = append(errs, ValidateDependencies(req.GetServices())...)
	errs = append(errs, ValidateNetworks(req.GetApp(), req.GetNetworks(), req.GetServices())...)
	return append(errs, ValidateStorage(req)...)
}

// ValidateSpec checks one service's spec and returns every problem, with
// Service set to service and fields named as in a Compose file. It accepts
// both normalized specs and specs whose defaults are still unset.
func ValidateSpec(service string, spec *berthv1.ServiceSpec) Errors {
	v := specValidator{service: service}
	if spec == nil {
		v.add("", "spec is missing")
		return v.errs
	}
	v.image(spec.GetImage())
	if wd := spec.GetWorkingDir(); wd != "" && !path.IsAbs(wd) {
		v.add("working_dir", fmt.Sprintf("%q is not an absolute path; write it from the container's root, like /app", wd))
	}
	v.env(spec.GetEnv())
	for k := range spec.GetLabels() {
		if strings.TrimSpace(k) == "" {
			v.add("labels", "a label has an empty key")
		}
	}
	v.ports(spec)
	switch spec.GetMode() {
	case berthv1.ServiceMode_SERVICE_MODE_UNSPECIFIED, berthv1.ServiceMode_SERVICE_MODE_REPLICATED,
		berthv1.ServiceMode_SERVICE_MODE_GLOBAL:
		// In global mode replicas is ignored, so any value is fine.
	default:
		v.add("deploy.mode", fmt.Sprintf("unknown mode %d; use replicated or global", spec.GetMode()))
	}
	if r := ReplicasReason(spec.GetMode(), spec.GetReplicas(), MaxReplicasLimit); r != "" {
		v.add("deploy.replicas", r)
	}
	v.resources("deploy.resources.limits", spec.GetLimits())
	v.resources("deploy.resources.reservations", spec.GetReservations())
	v.memoryLimit(spec.GetLimits().GetMemoryBytes())
	v.reservationsFit(spec.GetLimits(), spec.GetReservations())
	v.placement(spec.GetMode(), spec.GetPlacement())
	v.strategy(spec.GetStrategy())
	v.updateConfig("deploy.update_config", spec.GetUpdateConfig(), false)
	v.updateConfig("deploy.rollback_config", spec.GetRollbackConfig(), true)
	if s := spec.GetStopSignal(); s != "" {
		if _, _, err := ParseSignal(s); err != nil {
			v.add("stop_signal", err.Error())
		}
	}
	v.duration("stop_grace_period", spec.GetStopGracePeriod())
	v.restartPolicy(spec.GetRestartPolicy())
	v.healthCheck(spec.GetHealthcheck())
	v.dependencies(spec.GetDependsOn())
	v.endpoint(spec)
	v.storage(spec)
	v.container(spec.GetContainer())
	v.logging(spec.GetLogging())
	return v.errs
}

// healthCheck checks a health check the way Docker reads one.
func (v *specValidator) healthCheck(hc *berthv1.HealthCheck) {
	if hc == nil {
		return
	}
	if test := hc.GetTest(); len(test) > 0 {
		switch test[0] {
		case "NONE":
		case "CMD", "CMD-SHELL":
			if len(test) < 2 || strings.TrimSpace(strings.Join(test[1:], "")) == "" {
				v.add("healthcheck.test", fmt.Sprintf("%s needs a command after it", test[0]))
			}
		default:
			v.add("healthcheck.test", fmt.Sprintf("starts with %q; use [\"CMD\", ...], [\"CMD-SHELL\", \"...\"], [\"NONE\"] or a plain string", test[0]))
		}
	}
	v.duration("healthcheck.interval", hc.GetInterval())
	v.duration("healthcheck.timeout", hc.GetTimeout())
	v.duration("healthcheck.start_period", hc.GetStartPeriod())
	v.duration("healthcheck.start_interval", hc.GetStartInterval())
	if hc.GetHttpPort() > 65535 {
		v.add("healthcheck.x-berth-http.port", fmt.Sprintf("%d is out of range 1-65535", hc.GetHttpPort()))
	}
	if p := hc.GetHttpPath(); p != "" && !strings.HasPrefix(p, "/") {
		v.add("healthcheck.x-berth-http.path", fmt.Sprintf("%q must start with /", p))
	}
	if hc.GetTcpPort() > 65535 {
		v.add("healthcheck.x-berth-tcp.port", fmt.Sprintf("%d is out of range 1-65535", hc.GetTcpPort()))
	}
}

// specValidator collects the problems of one spec.
type specValidator struct {
	service string
	errs    Errors
}

func (v *specValidator) add(field, reason string) {
	v.errs = append(v.errs, FieldError{Service: v.service, Field: field, Reason: reason})
}

func (v *specValidator) image(image string) {
	if image == "" {
		v.add("image", "image is required; name the image to run, like image: busybox:latest")
		return
	}
	if _, err := imageref.Parse(image); err != nil {
		v.add("image", fmt.Sprintf("%q is not a valid image reference: %v", image, errors.Unwrap(err)))
	}
}

func (v *specValidator) env(env []string) {
	seen := make(map[string]bool, len(env))
	for i, entry := range env {
		field := fmt.Sprintf("environment[%d]", i)
		key, _, found := strings.Cut(entry, "=")
		switch {
		case !found:
			v.add(field, fmt.Sprintf("%q is not KEY=VALUE", entry))
		case strings.TrimSpace(key) == "":
			v.add(field, fmt.Sprintf("%q has an empty variable name", entry))
		case seen[key]:
			v.add(field, fmt.Sprintf("variable %s is set twice; keep one", key))
		}
		seen[key] = true
	}
}

// binding is what a published port occupies on a node.
type binding struct {
	index int
	// port..end are the host ports, end == port for one port.
	port, end uint32
	protocol  string
	// hostIP is "" for every address.
	hostIP string
}

// overlaps reports whether two bindings cannot both be made: a port bound
// on every address takes it on each single address too.
func (b binding) overlaps(o binding) bool {
	return b.port <= o.end && o.port <= b.end && b.protocol == o.protocol &&
		(b.hostIP == o.hostIP || b.hostIP == "" || o.hostIP == "")
}

// portsText names a binding's ports with their verb: "port 8080 is",
// "ports 6005-6015 are".
func (b binding) portsText() string {
	if b.end == b.port {
		return fmt.Sprintf("port %d is", b.port)
	}
	return fmt.Sprintf("ports %d-%d are", b.port, b.end)
}

func (v *specValidator) ports(spec *berthv1.ServiceSpec) {
	var bound []binding
	for i, p := range spec.GetPorts() {
		field := fmt.Sprintf("ports[%d]", i)
		if p == nil {
			v.add(field, "port is missing")
			continue
		}
		if p.GetTarget() < 1 || p.GetTarget() > 65535 {
			v.add(field+".target", fmt.Sprintf("%d is out of range 1-65535", p.GetTarget()))
		}
		if p.GetPublished() > 65535 {
			v.add(field+".published", fmt.Sprintf("%d is out of range 1-65535 (or 0 to leave it unpublished)", p.GetPublished()))
		}
		end, ok := v.portRange(field, spec, p)
		if !ok {
			continue
		}
		proto := strings.ToLower(p.GetProtocol())
		if proto == "" {
			proto = DefaultProtocol
		}
		if proto != "tcp" && proto != "udp" {
			v.add(field+".protocol", fmt.Sprintf("%q is not supported; use tcp or udp", p.GetProtocol()))
		}
		hostIP := p.GetHostIp()
		if hostIP != "" {
			addr, err := netip.ParseAddr(hostIP)
			if err != nil {
				v.add(field+".host_ip", fmt.Sprintf("%q is not an IP address", hostIP))
				continue
			}
			hostIP = addr.String()
			if addr.IsUnspecified() {
				hostIP = ""
			}
		}
		if p.GetPublished() == 0 {
			continue
		}
		b := binding{index: i, port: p.GetPublished(), end: end, protocol: proto, hostIP: hostIP}
		if j := slices.IndexFunc(bound, b.overlaps); j >= 0 {
			v.add(field+".published", fmt.Sprintf("%s %s already published by ports[%d]; publish each host port once", proto, b.portsText(), bound[j].index))
			continue
		}
		bound = append(bound, b)
	}
}

// portRange checks a port's range of host ports (published_end), and
// returns the last host port it takes: published itself when it has no
// range. A range is for host mode, where each task takes a free port of
// it, so it needs a port for each replica. ok is false when the port is
// too wrong to check further.
func (v *specValidator) portRange(field string, spec *berthv1.ServiceSpec, p *berthv1.PortSpec) (end uint32, ok bool) {
	end = p.GetPublishedEnd()
	if end == 0 {
		return p.GetPublished(), true
	}
	lo := p.GetPublished()
	switch {
	case lo == 0:
		v.add(field+".published", fmt.Sprintf("a range ending at %d needs its first port; write it as FIRST-LAST, like 6005-6015", end))
		return 0, false
	case end > 65535:
		v.add(field+".published", fmt.Sprintf("the range %d-%d ends out of range 1-65535", lo, end))
		return 0, false
	case end < lo:
		v.add(field+".published", fmt.Sprintf("the range %d-%d ends before it starts; write the lower port first", lo, end))
		return 0, false
	}
	// Normalize makes an unset mode host for a range.
	if m := p.GetMode(); m != berthv1.PublishMode_PUBLISH_MODE_HOST && m != berthv1.PublishMode_PUBLISH_MODE_UNSPECIFIED {
		v.add(field+".mode", fmt.Sprintf("the range %d-%d publishes a port of each task on its node, which needs mode: host", lo, end))
	}
	size := uint64(end-lo) + 1
	if spec.GetMode() != berthv1.ServiceMode_SERVICE_MODE_GLOBAL && spec.GetReplicas() > size {
		v.add(field+".published", fmt.Sprintf("the range %d-%d has %d ports for %d replicas, and each replica takes its own port; widen the range or lower deploy.replicas", lo, end, size, spec.GetReplicas()))
	}
	return end, true
}

// MinMemoryLimit is the smallest memory limit a container starts with:
// below it, runc's own setup in the container's cgroup is killed.
const MinMemoryLimit = 6 << 20

// resources checks limits or reservations (field names which). Zero means
// unset, so a set amount is positive.
func (v *specValidator) resources(field string, r *berthv1.Resources) {
	if r.GetMilliCpus() < 0 {
		v.add(field+".cpus", fmt.Sprintf("%d millicores is negative; give a positive number of CPUs, like cpus: \"0.5\", or leave it unset", r.GetMilliCpus()))
	}
	if r.GetMemoryBytes() < 0 {
		v.add(field+".memory", fmt.Sprintf("%d bytes is negative; give a positive size, like memory: 64m, or leave it unset", r.GetMemoryBytes()))
	}
}

// memoryLimit checks that a memory limit, when set, leaves a container
// room to start.
func (v *specValidator) memoryLimit(limit int64) {
	if limit > 0 && limit < MinMemoryLimit {
		v.add("deploy.resources.limits.memory", fmt.Sprintf("%s is too little for a container to start; give at least 6m (%d bytes), or leave it unset", bytesSize(limit), MinMemoryLimit))
	}
}

// bytesSize formats a byte count for a reader, like 4194304 bytes (4 MiB).
func bytesSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d bytes (%d MiB)", n, n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d bytes (%d KiB)", n, n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

func (v *specValidator) reservationsFit(limits, reservations *berthv1.Resources) {
	if l, r := limits.GetMilliCpus(), reservations.GetMilliCpus(); l > 0 && r > l {
		v.add("deploy.resources.reservations.cpus", fmt.Sprintf("reserves %s CPUs, more than the limit of %s; lower the reservation or raise the limit", cpus(r), cpus(l)))
	}
	if l, r := limits.GetMemoryBytes(), reservations.GetMemoryBytes(); l > 0 && r > l {
		v.add("deploy.resources.reservations.memory", fmt.Sprintf("reserves %d bytes, more than the limit of %d; lower the reservation or raise the limit", r, l))
	}
}

// cpus formats millicores as a CPU count, like 0.5.
func cpus(milli int64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%d.%03d", milli/1000, milli%1000), "0"), ".")
}

func (v *specValidator) placement(mode berthv1.ServiceMode, p *berthv1.Placement) {
	if p.GetMaxReplicasPerNode() > 0 && mode == berthv1.ServiceMode_SERVICE_MODE_GLOBAL {
		v.add("deploy.placement.max_replicas_per_node", "applies only to replicated services: a global service runs one task on each node already; remove it, or use mode: replicated")
	}
	v.platforms(p.GetPlatforms())
	for i, c := range p.GetConstraints() {
		field := fmt.Sprintf("deploy.placement.constraints[%d]", i)
		parsed, err := constraint.Parse(c)
		if err != nil {
			v.add(field, err.Error())
			continue
		}
		if pl, ok := constraintPlatform(parsed); ok {
			if err := checkPlatform(pl); err != nil {
				v.add(field, fmt.Sprintf("constraint %q: %v", c, err))
			}
		}
	}
	for i, pref := range p.GetPreferences() {
		const prefix = "node.labels."
		if !strings.HasPrefix(pref, prefix) || len(pref) == len(prefix) {
			v.add(fmt.Sprintf("deploy.placement.preferences[%d]", i), fmt.Sprintf("cannot spread over %q; spread over a node label, like spread: node.labels.zone", pref))
		}
	}
}

// strategy checks the service's scheduling strategy (x-berth.strategy).
func (v *specValidator) strategy(s berthv1.SchedulingStrategy) {
	switch s {
	case berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_UNSPECIFIED, berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_SPREAD,
		berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_BINPACK:
	default:
		v.add("x-berth.strategy", fmt.Sprintf("unknown strategy %d; use spread or binpack", s))
	}
}

func (v *specValidator) duration(field string, d *durationpb.Duration) {
	if d == nil {
		return
	}
	if err := d.CheckValid(); err != nil {
		v.add(field, fmt.Sprintf("invalid duration: %v", err))
		return
	}
	if d.AsDuration() < 0 {
		v.add(field, fmt.Sprintf("%s is negative", d.AsDuration()))
	}
}

func (v *specValidator) restartPolicy(rp *berthv1.RestartPolicy) {
	if rp == nil {
		return
	}
	switch rp.GetCondition() {
	case berthv1.RestartCondition_RESTART_CONDITION_UNSPECIFIED, berthv1.RestartCondition_RESTART_CONDITION_ANY,
		berthv1.RestartCondition_RESTART_CONDITION_ON_FAILURE, berthv1.RestartCondition_RESTART_CONDITION_NONE:
	default:
		v.add("deploy.restart_policy.condition", fmt.Sprintf("unknown condition %d; use none, on-failure or any", rp.GetCondition()))
	}
	v.duration("deploy.restart_policy.delay", rp.GetDelay())
	v.duration("deploy.restart_policy.window", rp.GetWindow())
}
