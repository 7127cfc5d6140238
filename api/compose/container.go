package compose

import (
	"fmt"
	"maps"
	"slices"

	"github.com/compose-spec/compose-go/v2/types"
	"google.golang.org/protobuf/proto"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
)

// ownNamespace maps the values of network_mode and ipc that Docker reads
// as the container's own namespace (its default) to Berth's "" for it;
// host stays host, and validation refuses the rest.
var ownNamespace = map[string]map[string]bool{
	"network_mode": {"bridge": true, "default": true},
	"ipc":          {"private": true, "shareable": true},
}

func namespaceMode(field, value string) string {
	if ownNamespace[field][value] {
		return ""
	}
	return value
}

// convertContainer maps the process and kernel options of a service onto
// the spec's ContainerOptions, left nil when none is set, so a spec
// without them stays as it was. Whether the cluster allows the
// privileged ones is the server's to check.
func (c *converted) convertContainer(svc types.ServiceConfig) {
	o := &berthv1.ContainerOptions{
		CapAdd:      cloneStrings(svc.CapAdd),
		CapDrop:     cloneStrings(svc.CapDrop),
		ReadOnly:    svc.ReadOnly,
		GroupAdd:    cloneStrings(svc.GroupAdd),
		PidsLimit:   svc.PidsLimit,
		ShmSize:     int64(svc.ShmSize),
		Privileged:  svc.Privileged,
		Pid:         svc.Pid,
		Ipc:         namespaceMode("ipc", svc.Ipc),
		NetworkMode: namespaceMode("network_mode", svc.NetworkMode),
		SecurityOpt: cloneStrings(svc.SecurityOpt),
	}
	if svc.Init != nil {
		o.Init = *svc.Init
	}
	if len(svc.Sysctls) > 0 {
		o.Sysctls = maps.Clone(map[string]string(svc.Sysctls))
	}
	for _, name := range slices.Sorted(maps.Keys(svc.Ulimits)) {
		u := svc.Ulimits[name]
		if u == nil {
			continue
		}
		ul := &berthv1.Ulimit{Name: name, Soft: int64(u.Soft), Hard: int64(u.Hard)}
		if u.Single != 0 {
			ul.Soft, ul.Hard = int64(u.Single), int64(u.Single)
		}
		o.Ulimits = append(o.Ulimits, ul)
	}
	for _, d := range svc.Devices {
		o.Devices = append(o.Devices, deviceString(d))
	}
	if d := svc.Deploy; d != nil && d.Resources.Limits != nil && d.Resources.Limits.Pids != 0 {
		pids := d.Resources.Limits.Pids
		if o.PidsLimit != 0 && o.PidsLimit != pids {
			c.errs = append(c.errs, validation.FieldError{Service: svc.Name, Field: "deploy.resources.limits.pids",
				Reason: fmt.Sprintf("%d differs from pids_limit: %d; set only one of them", pids, o.PidsLimit)})
		}
		o.PidsLimit = pids
	}
	if proto.Size(o) > 0 {
		c.spec.Container = o
	}
}

// deviceString writes a device the way ContainerOptions keeps it:
// HOST_PATH, with :CONTAINER_PATH when it differs and :PERMISSIONS when
// they are not all of rwm.
func deviceString(d types.DeviceMapping) string {
	s := d.Source
	perms := d.Permissions
	if perms == "rwm" {
		perms = ""
	}
	if d.Target != "" && (d.Target != d.Source || perms != "") {
		s += ":" + d.Target
	}
	if perms != "" {
		s += ":" + perms
	}
	return s
}
