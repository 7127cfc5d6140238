package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// The CLI shows enum values as the lower-case words of the design
// (TASK_STATE_RUNNING is "running", RESTART_CONDITION_ON_FAILURE is
// "on-failure"); UNSPECIFIED values show as "".

func taskStateWord(s berthv1.TaskState) string { return enumWord(s.String(), "TASK_STATE_") }
func nodeStatusWord(s berthv1.NodeStatus) string {
	return enumWord(s.String(), "NODE_STATUS_")
}
func availabilityWord(a berthv1.NodeAvailability) string {
	return enumWord(a.String(), "NODE_AVAILABILITY_")
}
func serviceModeWord(m berthv1.ServiceMode) string { return enumWord(m.String(), "SERVICE_MODE_") }

func enumWord(name, prefix string) string {
	w := strings.TrimPrefix(name, prefix)
	if w == "UNSPECIFIED" {
		return ""
	}
	return strings.ReplaceAll(strings.ToLower(w), "_", "-")
}

// shortID is the 12-character form of an ID shown in tables.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// shortDigest drops the algorithm and keeps 12 hex digits.
func shortDigest(d string) string {
	if _, hex, ok := strings.Cut(d, ":"); ok {
		d = hex
	}
	return shortID(d)
}

// ago says how long before now t was, coarsely ("12s ago", "3m ago",
// "5h ago", "2d ago"); "" when t is unset.
// heartbeatWords is when n's agent was last heard, as `berth node ls`
// shows it: "connected" while the node is ready (its agent holds a
// session, heard within three heartbeat periods; heartbeats are not
// written to the record), otherwise how long ago it was last heard.
func heartbeatWords(now time.Time, n *berthv1.Node) string {
	if n.GetStatus() == berthv1.NodeStatus_NODE_STATUS_READY {
		return "connected"
	}
	return ago(now, n.GetLastHeartbeat())
}

func ago(now time.Time, t *timestamppb.Timestamp) string {
	if t == nil {
		return ""
	}
	d := now.Sub(t.AsTime())
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	default:
		return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
	}
}

// rfc3339 formats t for JSON and YAML output; "" when unset.
func rfc3339(t *timestamppb.Timestamp) string {
	if t == nil {
		return ""
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

// port is one port mapping as shown in JSON and YAML output.
type port struct {
	Target    uint32 `json:"target"`
	Published uint32 `json:"published,omitempty"`
	Protocol  string `json:"protocol"`
	HostIP    string `json:"hostIP,omitempty"`
}

// String is the table form: "[host_ip:]published->target/proto", or
// "target/proto" when not published.
func (p port) String() string {
	proto := p.Protocol
	if proto == "" {
		proto = "tcp"
	}
	if p.Published == 0 {
		return fmt.Sprintf("%d/%s", p.Target, proto)
	}
	host := ""
	if p.HostIP != "" {
		host = p.HostIP + ":"
	}
	return fmt.Sprintf("%s%d->%d/%s", host, p.Published, p.Target, proto)
}

func specPorts(ps []*berthv1.PortSpec) []port {
	out := make([]port, 0, len(ps))
	for _, p := range ps {
		out = append(out, port{Target: p.GetTarget(), Published: p.GetPublished(), Protocol: p.GetProtocol(), HostIP: p.GetHostIp()})
	}
	return out
}

func bindingPorts(ps []*berthv1.PortBinding) []port {
	out := make([]port, 0, len(ps))
	for _, p := range ps {
		out = append(out, port{Target: p.GetTarget(), Published: p.GetPublished(), Protocol: p.GetProtocol(), HostIP: p.GetHostIp()})
	}
	return out
}

func portsColumn(ps []port) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// cores shows millicores as cores: 2000 is "2", 1500 is "1.5".
func cores(milli int64) float64 { return float64(milli) / 1000 }

func coresColumn(milli int64) string {
	if milli == 0 {
		return ""
	}
	return strconv.FormatFloat(cores(milli), 'f', -1, 64)
}

// bytesColumn shows a size in binary units: 512MiB, 7.8GiB.
func bytesColumn(n int64) string {
	if n <= 0 {
		return ""
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	return s + []string{"KiB", "MiB", "GiB", "TiB", "PiB"}[i]
}
