// Package quota decides whether a namespace's quota admits a change, as
// pure code: the services and volume records of the namespace before and
// after the change go in, a decision (nil, or an error that names the
// quota, the use and the request) comes out. The API server reads the
// cache, calls it, and guards its write so two changes cannot both pass
// on the same use.
//
// The use of a namespace is what its services ask for, not what happens
// to run: every desired task (a replicated service's replicas, a global
// service's eligible nodes) holds its service's reservations, and every
// named volume counts, recorded or about to be.
package quota

import (
	"fmt"
	"math"
	"slices"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/scheduler"
)

// Use is what a namespace holds against its quota.
type Use struct {
	CPUMillis   int64
	MemoryBytes int64
	Tasks       int64
	Volumes     int64
}

// Proto returns u as the API's NamespaceUsage.
func (u Use) Proto() *berthv1.NamespaceUsage {
	return &berthv1.NamespaceUsage{CpuMillis: u.CPUMillis, MemoryBytes: u.MemoryBytes, Tasks: u.Tasks, Volumes: u.Volumes}
}

// Service is one service as a quota counts it.
type Service struct {
	// Name is "app/service", for messages.
	Name string
	Spec *berthv1.ServiceSpec
	// Tasks is how many tasks the service wants.
	Tasks int64
	// Global says Tasks counts nodes, not replicas.
	Global bool
	// Volumes are the names of the named volumes its tasks use, one per
	// slot (or node) and source.
	Volumes []string
}

// maxVolumeSlots bounds the slots whose volumes Desired lists.
const maxVolumeSlots = 1 << 20

// Desired returns the service named name ("app/service") with spec as a
// quota counts it on nodes: a replicated service wants its replicas, a
// global one a task on each node it is eligible for, as the orchestrator
// runs it.
func Desired(name string, spec *berthv1.ServiceSpec, nodes []*berthv1.Node) Service {
	s := Service{Name: name, Spec: spec}
	if spec.GetMode() == berthv1.ServiceMode_SERVICE_MODE_GLOBAL {
		s.Global = true
		for _, n := range scheduler.GlobalNodes(spec, nodes) {
			s.Tasks++
			for _, v := range scheduler.TaskVolumes(spec, 0, n.GetName()) {
				s.Volumes = append(s.Volumes, v.Name)
			}
		}
		return s
	}
	s.Tasks = clamp(spec.GetReplicas())
	if len(scheduler.TaskVolumes(spec, 1, "")) == 0 {
		return s
	}
	// Bounded: a service stored before replicas were capped must not
	// make a listing walk billions of slots; past the bound it is far
	// over any volume quota anyway.
	for slot := uint64(1); slot <= min(spec.GetReplicas(), maxVolumeSlots); slot++ {
		for _, v := range scheduler.TaskVolumes(spec, slot, "") {
			s.Volumes = append(s.Volumes, v.Name)
		}
	}
	return s
}

// Of is the use of services together with the volume records that exist
// (by name): a volume counts once, whether recorded, wanted, or both.
func Of(services []Service, records []string) Use {
	var u Use
	volumes := make(map[string]bool, len(records))
	for _, r := range records {
		volumes[r] = true
	}
	for _, s := range services {
		u.Tasks = add(u.Tasks, s.Tasks)
		u.CPUMillis = add(u.CPUMillis, mul(s.Tasks, max(s.Spec.GetReservations().GetMilliCpus(), 0)))
		u.MemoryBytes = add(u.MemoryBytes, mul(s.Tasks, max(s.Spec.GetReservations().GetMemoryBytes(), 0)))
		for _, v := range s.Volumes {
			volumes[v] = true
		}
	}
	u.Volumes = int64(len(volumes))
	return u
}

// Resource is one thing a quota bounds.
type Resource int

// The resources, in the order messages name them.
const (
	Tasks Resource = iota
	CPU
	Memory
	Volumes
)

var resourceNames = [...]string{Tasks: "tasks", CPU: "cpu", Memory: "memory", Volumes: "volumes"}

func (r Resource) String() string { return resourceNames[r] }

func (r Resource) of(u Use) int64 {
	switch r {
	case Tasks:
		return u.Tasks
	case CPU:
		return u.CPUMillis
	case Memory:
		return u.MemoryBytes
	}
	return u.Volumes
}

func (r Resource) limit(q *berthv1.NamespaceQuota) int64 {
	switch r {
	case Tasks:
		return q.GetTasks()
	case CPU:
		return q.GetCpuMillis()
	case Memory:
		return q.GetMemoryBytes()
	}
	return q.GetVolumes()
}

// Format writes an amount of r the way people read it: "1.5 CPUs",
// "512 MiB", "4 tasks".
func (r Resource) Format(n int64) string {
	switch r {
	case CPU:
		return FormatCPU(n)
	case Memory:
		return FormatBytes(n)
	case Tasks:
		return plural(n, "task")
	}
	return plural(n, "volume")
}

// Change is what a request would do to a namespace.
type Change struct {
	Namespace string
	// Verb names the request in messages: "apply", "scale", "rollback".
	Verb  string
	Quota *berthv1.NamespaceQuota
	// Before is the namespace's use now; After its use with the change.
	Before, After Use
	// Services are the services the request sets, to explain the need.
	Services []Service
}

// Exceeded is the refusal of a change that would take a resource of a
// namespace over its quota.
type Exceeded struct {
	Namespace string
	Verb      string
	Resource  Resource
	Quota     int64
	Before    int64
	After     int64
	// Detail names the services of the request that need the resource.
	Detail string
}

func (e *Exceeded) Error() string {
	msg := fmt.Sprintf("namespace %s: %s quota %s; in use %s; this %s needs %s more", e.Namespace, e.Resource,
		e.Resource.Format(e.Quota), e.Resource.Format(e.Before), e.Verb, e.Resource.Format(e.After-e.Before))
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg
}

// Errors are the resources a change takes over quota, each explained.
type Errors []*Exceeded

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ") + "; raise the quota (`berth namespace update`) or ask for less"
}

// Check admits c, or returns Errors naming every resource it would take
// over quota. A quota of 0 bounds nothing. A change that does not raise a
// resource is admitted even when the namespace is over quota already (its
// quota was lowered): scaling down must always be possible.
func Check(c Change) error {
	var errs Errors
	for _, r := range []Resource{Tasks, CPU, Memory, Volumes} {
		limit, before, after := r.limit(c.Quota), r.of(c.Before), r.of(c.After)
		if limit <= 0 || after <= limit || after <= before {
			continue
		}
		errs = append(errs, &Exceeded{Namespace: c.Namespace, Verb: c.Verb, Resource: r,
			Quota: limit, Before: before, After: after, Detail: detail(r, c.Services)})
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// detail says what each service of a request needs of r:
// "web/api: 4 replicas × 512 MiB".
func detail(r Resource, services []Service) string {
	var parts []string
	for _, s := range services {
		unit := "replica"
		if s.Global {
			unit = "node"
		}
		count := plural(s.Tasks, unit)
		switch r {
		case Tasks:
			if s.Tasks > 0 {
				parts = append(parts, s.Name+": "+count)
			}
		case CPU:
			if m := s.Spec.GetReservations().GetMilliCpus(); m > 0 && s.Tasks > 0 {
				parts = append(parts, s.Name+": "+count+" × "+FormatCPU(m))
			}
		case Memory:
			if b := s.Spec.GetReservations().GetMemoryBytes(); b > 0 && s.Tasks > 0 {
				parts = append(parts, s.Name+": "+count+" × "+FormatBytes(b))
			}
		case Volumes:
			if len(s.Volumes) > 0 {
				parts = append(parts, s.Name+": "+plural(int64(len(s.Volumes)), "volume"))
			}
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// FormatCPU writes millicores as CPUs: "2 CPUs", "0.5 CPU".
func FormatCPU(milli int64) string {
	s := fmt.Sprintf("%.3f", float64(milli)/1000)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if milli == 1000 || milli < 1000 {
		return s + " CPU"
	}
	return s + " CPUs"
}

// FormatBytes writes a size in binary units: "512 MiB", "1.5 GiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return plural(n, "byte")
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v := float64(n) / unit
	i := 0
	for v >= unit && i < len(units)-1 {
		v /= unit
		i++
	}
	s := strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
	return s + " " + units[i]
}

func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// clamp turns a count into an int64, saturating.
func clamp(n uint64) int64 {
	if n > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(n)
}

// add and mul saturate instead of wrapping: a use past the int64 range is
// over any quota, never negative.
func add(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func mul(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b
}
