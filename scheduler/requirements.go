package scheduler

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/constraint"
)

// requirements is what placement needs to know of a task: parsed and
// normalized once per group of alike tasks.
type requirements struct {
	service string
	// image is the normalized image reference ("docker.io/library/redis:latest").
	image       string
	cpu, memory int64
	constraints []constraint.Constraint
	// preferences are the label names to spread over, outermost first.
	preferences []string
	ports       []hostPort
	// ranges are the host port ranges the task takes one port of each.
	ranges []portRange
	// maxPerNode caps the service's tasks on one node; 0 is no cap.
	maxPerNode uint64
	// platforms the task runs on; empty is any.
	platforms []platform
}

// hostPort is one published port of a task.
type hostPort struct {
	port     uint32
	protocol string
	// hostIP is "" when the port binds every host address.
	hostIP string
}

// portRange is a published range of host ports (host mode): a task takes
// one free port of it on its node, given to it when it is placed.
type portRange struct {
	from, to, target uint32
	protocol         string
	// hostIP is "" when the ports bind every host address.
	hostIP string
}

func (r portRange) String() string {
	s := fmt.Sprintf("%d-%d/%s", r.from, r.to, r.protocol)
	if r.hostIP != "" {
		s = r.hostIP + ":" + s
	}
	return s
}

// port is the host port p of the range.
func (r portRange) port(p uint32) hostPort {
	return hostPort{port: p, protocol: r.protocol, hostIP: r.hostIP}
}

// free returns the lowest port of the range free on n, or 0.
func (r portRange) free(n *nodeState) uint32 {
	for p := r.from; p <= r.to && p >= r.from; p++ {
		if !n.portInUse(r.port(p)) {
			return p
		}
	}
	return 0
}

func (p hostPort) String() string {
	s := strconv.FormatUint(uint64(p.port), 10) + "/" + p.protocol
	if p.hostIP != "" {
		s = p.hostIP + ":" + s
	}
	return s
}

// serviceKey names the service a task belongs to. Tasks carry the service
// ID; the namespace/app/name path stands in when it is missing.
func serviceKey(t *berthv1.Task) string {
	if id := t.GetServiceId(); id != "" {
		return id
	}
	return t.GetNamespace() + "/" + t.GetApp() + "/" + t.GetService()
}

// groupKey is equal for two tasks exactly when placement treats them alike,
// so that their requirements, node filtering and image lookup are computed
// once.
func groupKey(t *berthv1.Task) string {
	spec := t.GetSpec()
	var b strings.Builder
	b.WriteString(serviceKey(t))
	b.WriteByte(0)
	b.WriteString(spec.GetImage())
	b.WriteByte(0)
	b.WriteString(strconv.FormatInt(spec.GetReservations().GetMilliCpus(), 10))
	b.WriteByte(0)
	b.WriteString(strconv.FormatInt(spec.GetReservations().GetMemoryBytes(), 10))
	for _, c := range spec.GetPlacement().GetConstraints() {
		b.WriteString("\x00c")
		b.WriteString(c)
	}
	for _, p := range spec.GetPlacement().GetPreferences() {
		b.WriteString("\x00p")
		b.WriteString(p)
	}
	for _, p := range spec.GetPorts() {
		if p.GetPublished() == 0 {
			continue
		}
		fmt.Fprintf(&b, "\x00h%d-%d/%s/%s", p.GetPublished(), p.GetPublishedEnd(), p.GetProtocol(), p.GetHostIp())
	}
	for _, p := range spec.GetPlacement().GetPlatforms() {
		b.WriteString("\x00o")
		b.WriteString(p.GetOs())
		b.WriteByte('/')
		b.WriteString(p.GetArchitecture())
	}
	if m := spec.GetPlacement().GetMaxReplicasPerNode(); m > 0 {
		b.WriteString("\x00m")
		b.WriteString(strconv.FormatUint(m, 10))
	}
	if s := spec.GetStrategy(); s != berthv1.SchedulingStrategy_SCHEDULING_STRATEGY_UNSPECIFIED {
		b.WriteString("\x00s")
		b.WriteString(strconv.Itoa(int(s)))
	}
	return b.String()
}

// requirementsOf reads the placement requirements of t. An error means the
// task can be placed nowhere until its spec is fixed.
func requirementsOf(t *berthv1.Task, normalize func(string) string) (requirements, error) {
	spec := t.GetSpec()
	req := requirements{
		service: serviceKey(t),
		image:   normalize(spec.GetImage()),
		cpu:     max(spec.GetReservations().GetMilliCpus(), 0),
		memory:  max(spec.GetReservations().GetMemoryBytes(), 0),
	}
	var err error
	req.constraints, err = constraint.ParseAll(spec.GetPlacement().GetConstraints())
	if err != nil {
		return req, fmt.Errorf("invalid placement: %w; fix the service's placement constraints and apply again", err)
	}
	for _, p := range spec.GetPlacement().GetPreferences() {
		label, err := parsePreference(p)
		if err != nil {
			return req, fmt.Errorf("invalid placement: %w; fix the service's placement preferences and apply again", err)
		}
		req.preferences = append(req.preferences, label)
	}
	req.maxPerNode = spec.GetPlacement().GetMaxReplicasPerNode()
	for _, p := range spec.GetPlacement().GetPlatforms() {
		req.platforms = append(req.platforms, newPlatform(p.GetOs(), p.GetArchitecture()))
	}
	for _, p := range spec.GetPorts() {
		switch {
		case holdsHostPort(p) && isRange(p):
			hp := newHostPort(p.GetPublished(), p.GetProtocol(), p.GetHostIp())
			req.ranges = append(req.ranges, portRange{from: p.GetPublished(), to: p.GetPublishedEnd(), target: p.GetTarget(), protocol: hp.protocol, hostIP: hp.hostIP})
		case holdsHostPort(p):
			req.ports = append(req.ports, newHostPort(p.GetPublished(), p.GetProtocol(), p.GetHostIp()))
		}
	}
	return req, nil
}

// isRange reports whether p publishes a range of host ports, of which
// each task takes one.
func isRange(p *berthv1.PortSpec) bool { return p.GetPublishedEnd() > p.GetPublished() }

// holdsHostPort reports whether p takes a host port on the node that runs
// its task: only a published port in host mode does. An ingress port
// answers on every node through the routing mesh and takes none.
func holdsHostPort(p *berthv1.PortSpec) bool {
	return p.GetPublished() != 0 && p.GetMode() == berthv1.PublishMode_PUBLISH_MODE_HOST
}

// taskHostPorts are the host ports t holds on its node: its host-mode
// ports, and those its agent reported bound that are not ingress ports of
// its spec (an agent may bind a host port of its own choice).
func taskHostPorts(t *berthv1.Task) []hostPort {
	var out []hostPort
	ports := t.GetSpec().GetPorts()
	for _, p := range ports {
		if holdsHostPort(p) && !isRange(p) {
			out = append(out, newHostPort(p.GetPublished(), p.GetProtocol(), p.GetHostIp()))
		}
	}
	// The ports of its ranges it was given when placed.
	for _, b := range t.GetHostPorts() {
		if b.GetPublished() != 0 {
			out = append(out, newHostPort(b.GetPublished(), b.GetProtocol(), b.GetHostIp()))
		}
	}
	for _, b := range t.GetStatus().GetPorts() {
		if b.GetPublished() == 0 {
			continue
		}
		hp := newHostPort(b.GetPublished(), b.GetProtocol(), b.GetHostIp())
		ingress := false
		for _, p := range ports {
			ingress = ingress || (!holdsHostPort(p) && p.GetPublished() == hp.port && newHostPort(0, p.GetProtocol(), "").protocol == hp.protocol)
		}
		if !ingress && !slices.Contains(out, hp) {
			out = append(out, hp)
		}
	}
	return out
}

func newHostPort(port uint32, protocol, hostIP string) hostPort {
	protocol = strings.ToLower(protocol)
	if protocol == "" {
		protocol = "tcp"
	}
	if hostIP == "0.0.0.0" || hostIP == "::" {
		hostIP = ""
	}
	return hostPort{port: port, protocol: protocol, hostIP: hostIP}
}

const labelPrefix = "node.labels."

// parsePreference reads "spread=node.labels.<label>" (the "spread=" may be
// left out) and returns the label name.
func parsePreference(pref string) (string, error) {
	key := strings.TrimSpace(pref)
	if rest, ok := strings.CutPrefix(key, "spread="); ok {
		key = strings.TrimSpace(rest)
	}
	label, ok := strings.CutPrefix(key, labelPrefix)
	if !ok || label == "" {
		return "", fmt.Errorf("placement preference %q: expected spread=node.labels.<label>", pref)
	}
	return label, nil
}
