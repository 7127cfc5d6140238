package apiserver

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The cluster settings that guard the nodes from the containers: a
// service may bind-mount a host path only under an allowed prefix, and
// may not be privileged (nor add every capability, use host devices, or
// turn off seccomp or no_new_privileges) or share the host's pid, ipc or
// network namespace unless the cluster allows it. They are checked when a
// spec is written (apply); scale, restart and rollback write no new spec,
// and rollback returns to a spec that passed once.

// Commands that relax the settings, named in refusals.
const (
	allowPrivilegedCommand     = "berth cluster settings --allow-privileged"
	allowHostNamespacesCommand = "berth cluster settings --allow-host-namespaces"
)

// checkSecurity checks every service of req against the cluster's
// settings.
func (s *Server) checkSecurity(req *berthv1.ApplyRequest) validation.Errors {
	settings := s.cfg.Cache.Settings()
	var errs validation.Errors
	for _, svc := range req.GetServices() {
		errs = append(errs, securityProblems(svc.GetName(), svc.GetSpec(), settings)...)
	}
	return errs
}

// securityProblems lists what spec asks for that settings do not allow,
// as problems of service that say how to allow it.
func securityProblems(service string, spec *berthv1.ServiceSpec, settings *berthv1.ClusterSettings) validation.Errors {
	var errs validation.Errors
	fail := func(field, reason string) {
		errs = append(errs, validation.FieldError{Service: service, Field: field, Reason: reason})
	}
	for i, m := range spec.GetMounts() {
		if m.GetType() != berthv1.MountType_MOUNT_TYPE_BIND {
			continue
		}
		if why := bindMountRefusal(m.GetSource(), settings.GetAllowedBindMounts()); why != "" {
			fail(fmt.Sprintf("volumes[%d].source", i), why)
		}
	}
	c := spec.GetContainer()
	if !settings.GetAllowPrivileged() {
		if c.GetPrivileged() {
			fail("privileged", "privileged mode is not allowed; allow it with: "+allowPrivilegedCommand)
		}
		for i, d := range c.GetDevices() {
			host, _, _ := strings.Cut(d, ":")
			fail(fmt.Sprintf("devices[%d]", i), fmt.Sprintf("host device %s is not allowed; allow it with: %s", host, allowPrivilegedCommand))
		}
		for i, capability := range c.GetCapAdd() {
			if name := strings.ToUpper(strings.TrimSpace(capability)); name == "ALL" || name == "CAP_ALL" {
				fail(fmt.Sprintf("cap_add[%d]", i), "cap_add ALL gives every capability and is not allowed; allow it with: "+allowPrivilegedCommand)
			}
		}
		for i, opt := range c.GetSecurityOpt() {
			if what := weakensSecurity(opt); what != "" {
				fail(fmt.Sprintf("security_opt[%d]", i), fmt.Sprintf("security_opt %q turns off %s, which is not allowed; allow it with: %s", opt, what, allowPrivilegedCommand))
			}
		}
	}
	if !settings.GetAllowHostNamespaces() {
		for _, ns := range []struct{ field, value, what string }{
			{"pid", c.GetPid(), "process"},
			{"ipc", c.GetIpc(), "IPC"},
			{"network_mode", c.GetNetworkMode(), "network"},
		} {
			if strings.EqualFold(strings.TrimSpace(ns.value), "host") {
				fail(ns.field, fmt.Sprintf("sharing the host's %s namespace is not allowed; allow it with: %s", ns.what, allowHostNamespacesCommand))
			}
		}
	}
	return errs
}

// bindMountRefusal says why source may not be bind-mounted under the
// allowed prefixes, or "" when it may. The path is compared cleaned, so
// "/srv/data/../../etc" is /etc; a prefix allows itself and what is
// under it, "/srv/data" allowing "/srv/data/db" but not "/srv/database".
func bindMountRefusal(source string, allowed []string) string {
	if !filepath.IsAbs(source) {
		return fmt.Sprintf("bind mount source %q is not an absolute path; name the host path from /", source)
	}
	clean := filepath.Clean(source)
	for _, p := range allowed {
		if pathUnder(clean, filepath.Clean(p)) {
			return ""
		}
	}
	shown := clean
	if clean != source {
		shown = fmt.Sprintf("%s (%s)", source, clean)
	}
	return fmt.Sprintf("bind mount %s is not under an allowed prefix; allow it with: berth cluster settings --allow-bind-mount %s", shown, clean)
}

// pathUnder reports whether clean path p is prefix or under it; both are
// cleaned and absolute.
func pathUnder(p, prefix string) bool {
	if prefix == "/" || p == prefix {
		return true
	}
	return strings.HasPrefix(p, prefix+"/")
}

// weakensSecurity says what a Docker security_opt turns off ("seccomp",
// "no_new_privileges"), or "" when it turns off neither. Docker accepts
// both "key=value" and "key:value".
func weakensSecurity(opt string) string {
	key, value, found := strings.Cut(opt, "=")
	if !found {
		key, value, _ = strings.Cut(opt, ":")
	}
	key, value = strings.ToLower(strings.TrimSpace(key)), strings.ToLower(strings.TrimSpace(value))
	switch {
	case (key == "no-new-privileges" || key == "no_new_privileges") && value == "false":
		return "no_new_privileges"
	case key == "seccomp" && value == "unconfined":
		return "seccomp"
	}
	return ""
}

// normalizeBindPrefixes checks the allowed bind mount prefixes of a
// settings update and returns them cleaned, sorted and without
// duplicates; a relative path is refused.
func normalizeBindPrefixes(in []string) ([]string, error) {
	var out []string
	for _, p := range in {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !filepath.IsAbs(p) {
			return nil, status.Errorf(codes.InvalidArgument, "allowed bind mount %q is not an absolute path; give a host path from /, like /srv/data", p)
		}
		out = append(out, filepath.Clean(p))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// sameHostAccess reports whether cur already has the host access settings
// of want (binds being its prefixes normalized).
func sameHostAccess(cur, want *berthv1.ClusterSettings, binds []string) bool {
	return slices.Equal(cur.GetAllowedBindMounts(), binds) && cur.GetAllowPrivileged() == want.GetAllowPrivileged() &&
		cur.GetAllowHostNamespaces() == want.GetAllowHostNamespaces()
}

// setHostAccess copies the host access settings of want into next.
func setHostAccess(next, want *berthv1.ClusterSettings, binds []string) {
	next.AllowedBindMounts, next.AllowPrivileged, next.AllowHostNamespaces = binds, want.GetAllowPrivileged(), want.GetAllowHostNamespaces()
}

// hostAccessWords describes the host access settings that are not the
// defaults, for the settings event: ", bind mounts under /srv, privileged
// allowed".
func hostAccessWords(s *berthv1.ClusterSettings) string {
	var out string
	if len(s.GetAllowedBindMounts()) > 0 {
		out += ", bind mounts under " + strings.Join(s.GetAllowedBindMounts(), ", ")
	}
	if s.GetAllowPrivileged() {
		out += ", privileged allowed"
	}
	if s.GetAllowHostNamespaces() {
		out += ", host namespaces allowed"
	}
	return out
}
