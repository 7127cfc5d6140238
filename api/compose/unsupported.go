package compose

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/schema"
	"github.com/compose-spec/compose-go/v2/tree"
)

// supported lists the Compose attributes Berth honours. The loader reports
// every attribute set in a file that matches none of them, so a key the
// Compose specification gains later is reported as unsupported until it is
// wired in here and in convertService. Keys consumed while loading (extends,
// env_file, label_file, profiles, include) count as honoured.
var supported = []tree.Path{
	"name",
	"include", "include.[].path", "include.[].env_file", "include.[].project_directory",
	"services.*.image",
	// build: is built by the CLI at apply; the other build keys are not
	// passed to the builder yet. A build secret's uid, gid and mode mean
	// nothing to BuildKit's secret mounts.
	"services.*.build", "services.*.build.context", "services.*.build.dockerfile",
	"services.*.build.args", "services.*.build.args.*", "services.*.build.target",
	"services.*.build.dockerfile_inline",
	"services.*.build.secrets", "services.*.build.secrets.[].source", "services.*.build.secrets.[].target",
	"services.*.command",
	"services.*.entrypoint",
	"services.*.environment", "services.*.environment.*",
	"services.*.env_file", "services.*.env_file.[].path", "services.*.env_file.[].required", "services.*.env_file.[].format",
	"services.*.working_dir",
	"services.*.user",
	"services.*.labels", "services.*.labels.*",
	"services.*.label_file",
	"services.*.ports.[].target", "services.*.ports.[].published", "services.*.ports.[].protocol",
	"services.*.ports.[].host_ip", "services.*.ports.[].mode",
	"services.*.scale",
	"services.*.deploy.mode",
	"services.*.deploy.replicas",
	"services.*.deploy.resources.limits.cpus", "services.*.deploy.resources.limits.memory",
	"services.*.deploy.resources.reservations.cpus", "services.*.deploy.resources.reservations.memory",
	"services.*.deploy.placement.constraints",
	"services.*.deploy.placement.preferences.[].spread",
	"services.*.deploy.placement.max_replicas_per_node",
	"services.*.deploy.update_config.parallelism", "services.*.deploy.update_config.delay",
	"services.*.deploy.update_config.failure_action", "services.*.deploy.update_config.monitor",
	"services.*.deploy.update_config.max_failure_ratio", "services.*.deploy.update_config.order",
	"services.*.deploy.rollback_config.parallelism", "services.*.deploy.rollback_config.delay",
	"services.*.deploy.rollback_config.failure_action", "services.*.deploy.rollback_config.monitor",
	"services.*.deploy.rollback_config.max_failure_ratio", "services.*.deploy.rollback_config.order",
	// The loader never reports x- keys; these are listed so this stays the
	// one inventory of what Berth reads. applyExtension rejects unknown keys
	// inside x-berth.
	"services.*.x-berth", "services.*.x-berth.strategy", "services.*.x-berth.allow-vulnerabilities",
	"services.*.platform",
	"services.*.deploy.restart_policy.condition", "services.*.deploy.restart_policy.delay",
	"services.*.deploy.restart_policy.max_attempts", "services.*.deploy.restart_policy.window",
	"services.*.restart",
	"services.*.healthcheck.test", "services.*.healthcheck.interval", "services.*.healthcheck.timeout",
	"services.*.healthcheck.retries", "services.*.healthcheck.start_period", "services.*.healthcheck.start_interval",
	"services.*.healthcheck.disable",
	"services.*.healthcheck.x-berth-http", "services.*.healthcheck.x-berth-http.port", "services.*.healthcheck.x-berth-http.path",
	"services.*.healthcheck.x-berth-tcp", "services.*.healthcheck.x-berth-tcp.port",
	// restart (restart the dependent with its dependency) is not honoured.
	"services.*.depends_on", "services.*.depends_on.*",
	"services.*.depends_on.*.condition", "services.*.depends_on.*.required",
	"services.*.stop_signal",
	"services.*.stop_grace_period",
	"services.*.profiles",
	"services.*.extends", "services.*.extends.file", "services.*.extends.service",
	// Networks: priority, gw_priority, interface_name, mac_address,
	// ipv6_address and link_local_ips are not honoured; the first network
	// that is not internal gives the default route.
	"services.*.networks", "services.*.networks.*", "services.*.networks.[]",
	"services.*.networks.*.aliases", "services.*.networks.*.ipv4_address",
	"services.*.deploy.endpoint_mode",
	"services.*.hostname",
	"services.*.extra_hosts", "services.*.extra_hosts.*",
	"services.*.dns", "services.*.dns_search", "services.*.dns_opt",
	// driver_opts, attachable, enable_ipv6 and the ipam keys besides the
	// subnet are not honoured; any driver but overlay and bridge is an error.
	"networks", "networks.*", "networks.*.name", "networks.*.driver",
	"networks.*.external", "networks.*.internal",
	"networks.*.labels", "networks.*.labels.*",
	"networks.*.ipam", "networks.*.ipam.config", "networks.*.ipam.config.[].subnet",
	// Volumes: only the local driver; driver_opts are refused. A bind
	// mount's options (create_host_path, propagation, selinux) and
	// consistency are not honoured.
	"volumes", "volumes.*", "volumes.*.name", "volumes.*.driver", "volumes.*.driver_opts", "volumes.*.driver_opts.*",
	"volumes.*.external", "volumes.*.labels", "volumes.*.labels.*",
	"services.*.volumes", "services.*.volumes.[].type", "services.*.volumes.[].source",
	"services.*.volumes.[].target", "services.*.volumes.[].read_only", "services.*.volumes.[].bind",
	"services.*.volumes.[].volume", "services.*.volumes.[].volume.nocopy", "services.*.volumes.[].volume.subpath",
	"services.*.volumes.[].tmpfs", "services.*.volumes.[].tmpfs.size", "services.*.volumes.[].tmpfs.mode",
	"services.*.tmpfs",
	// Secrets and configs: driver and template_driver are not honoured.
	"secrets", "secrets.*", "secrets.*.name", "secrets.*.file", "secrets.*.environment", "secrets.*.external",
	"secrets.*.labels", "secrets.*.labels.*",
	"configs", "configs.*", "configs.*.name", "configs.*.file", "configs.*.environment", "configs.*.content",
	"configs.*.external", "configs.*.labels", "configs.*.labels.*",
	"services.*.secrets", "services.*.secrets.[].source", "services.*.secrets.[].target",
	"services.*.secrets.[].uid", "services.*.secrets.[].gid", "services.*.secrets.[].mode",
	"services.*.configs", "services.*.configs.[].source", "services.*.configs.[].target",
	"services.*.configs.[].uid", "services.*.configs.[].gid", "services.*.configs.[].mode",
	// Container options. pid, ipc and network_mode take host (or their
	// default); security_opt takes no-new-privileges and seccomp's
	// unconfined and default.
	"services.*.init",
	"services.*.cap_add", "services.*.cap_drop",
	"services.*.sysctls", "services.*.sysctls.*",
	"services.*.ulimits", "services.*.ulimits.*", "services.*.ulimits.*.soft", "services.*.ulimits.*.hard",
	"services.*.read_only",
	"services.*.group_add",
	"services.*.pids_limit", "services.*.deploy.resources.limits.pids",
	"services.*.shm_size",
	"services.*.privileged",
	"services.*.devices", "services.*.devices.[].source", "services.*.devices.[].target", "services.*.devices.[].permissions",
	"services.*.pid", "services.*.ipc", "services.*.network_mode",
	"services.*.security_opt",
	// Logging: the json-file driver only, with max-size and max-file;
	// convertLogging refuses any other driver or option.
	"services.*.logging", "services.*.logging.driver", "services.*.logging.options", "services.*.logging.options.*",
}

// unsupportedValues are attributes supported lists that Berth honours
// only with some values: Detect says when one is not honoured.
var unsupportedValues = []loader.UnsupportedAttributePattern{
	// The short syntax of a bind mount ("./site:/site") sets
	// create_host_path: true, which is no more than the default; any other
	// bind option is not honoured.
	{Path: "services.*.volumes.[].bind", Detect: func(v any) bool {
		m, _ := v.(map[string]any)
		for k, opt := range m {
			// The short syntax's default is a types.OptOut, a file's a bool.
			if k != "create_host_path" || fmt.Sprint(opt) != "true" {
				return true
			}
		}
		return false
	}},
}

// unsupportedCheck collects what the loader finds outside supported.
type unsupportedCheck struct {
	findings []loader.UnsupportedAttribute
}

// option registers the check with the loader.
func (c *unsupportedCheck) option() func(*loader.Options) {
	report := func(found []loader.UnsupportedAttribute) {
		c.findings = append(c.findings, found...)
	}
	values := loader.WithUnsupportedAttributesCheck(unsupportedValues, report)
	keys := loader.WithSupportedAttributes(supported, report)
	return func(o *loader.Options) {
		values(o)
		keys(o)
	}
}

// attribute is where an unsupported key sits: in a service, or at the top
// level when service is "".
type attribute struct {
	service string
	field   string   // as users write it, e.g. deploy.update_config, ports[].name
	path    []string // to locate it in the files
}

// attributes returns the findings of the services Load keeps (one per
// field; a key set on several ports is one finding), in path order.
func (c *unsupportedCheck) attributes(keep map[string]bool) []attribute {
	var out []attribute
	seen := make(map[string]bool)
	for _, f := range c.findings {
		parts := f.Path.Parts()
		a := attribute{path: parts}
		switch {
		case len(parts) >= 3 && parts[0] == "services":
			if !keep[parts[1]] {
				continue // disabled by its profiles
			}
			a.service = parts[1]
			a.field = fieldName(parts[2:])
		default:
			a.field = fieldName(parts)
		}
		id := a.service + "/" + a.field
		if seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, a)
	}
	return out
}

// fieldName joins path parts the way users write them: ports[].name,
// deploy.update_config.
func fieldName(parts []string) string {
	var b strings.Builder
	for _, p := range parts {
		if p == tree.PathMatchList {
			b.WriteString("[]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

// warning formats the message for an unsupported attribute.
func (a attribute) warning(file string) string {
	var b strings.Builder
	if file != "" {
		b.WriteString(file)
		b.WriteString(": ")
	}
	if a.service != "" {
		fmt.Fprintf(&b, "service %s: ", strconv.Quote(a.service))
	}
	b.WriteString(a.field)
	b.WriteString(" is not supported yet and is ignored")
	return b.String()
}

// suggestKey returns the known key closest to key among the keys the
// Compose specification allows beside it (parent holds the path parts of
// the mapping holding it), or "" when none is close. It makes "imagee" say
// "did you mean image?".
func suggestKey(parent []string, key string) string {
	best, bestDist := "", len(key)/3+1
	for _, p := range schema.AttributePaths() {
		parts := p.Parts()
		if len(parts) != len(parent)+1 || !matchesPattern(parent, parts[:len(parent)]) {
			continue
		}
		candidate := parts[len(parent)]
		if candidate == tree.PathMatchAll || candidate == tree.PathMatchList {
			continue
		}
		if d := editDistance(key, candidate); d < bestDist || (d == bestDist && candidate < best) {
			best, bestDist = candidate, d
		}
	}
	return best
}

// matchesPattern reports whether the concrete path parts match pattern,
// where "*" stands for any key and "[]" for any index.
func matchesPattern(parts, pattern []string) bool {
	for i, p := range pattern {
		switch {
		case p == tree.PathMatchAll, p == parts[i]:
		case p == tree.PathMatchList && isIndex(parts[i]):
		default:
			return false
		}
	}
	return true
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = slices.Min([]int{prev[j] + 1, cur[j-1] + 1, prev[j-1] + cost})
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
