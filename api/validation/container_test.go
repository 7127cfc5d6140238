package validation

import (
	"testing"

	"google.golang.org/protobuf/proto"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestValidateSpecContainer(t *testing.T) {
	tests := []struct {
		name string
		opts *berthv1.ContainerOptions
		want []string
	}{
		{name: "every option", opts: &berthv1.ContainerOptions{
			Init:     true,
			CapAdd:   []string{"NET_ADMIN", "cap_sys_time", "ALL"},
			CapDrop:  []string{"CAP_NET_RAW", "mknod"},
			Sysctls:  map[string]string{"net.core.somaxconn": "1024", "kernel.shmmax": "1", "kernel.msgmax": "2", "kernel.sem": "250 32000 100 128", "fs.mqueue.msg_max": "3"},
			Ulimits:  []*berthv1.Ulimit{{Name: "nofile", Soft: 1024, Hard: 4096}, {Name: "nproc", Soft: -1, Hard: -1}, {Name: "core", Soft: 0, Hard: -1}},
			ReadOnly: true, GroupAdd: []string{"audio", "1001"}, PidsLimit: -1, ShmSize: 128 << 20,
			Privileged: true, Devices: []string{"/dev/fuse", "/dev/sda:/dev/xvda", "/dev/sdb:/dev/xvdb:rw"},
			Pid: "host", Ipc: "host",
			SecurityOpt: []string{"no-new-privileges", "no-new-privileges:false", "no-new-privileges=true", "seccomp=unconfined", "seccomp:default"},
		}},
		{name: "unknown capability", opts: &berthv1.ContainerOptions{CapAdd: []string{"NET_ADMIN", "NET_MAGIC"}, CapDrop: []string{"CAP_"}},
			want: []string{`cap_add[1]: unknown capability "NET_MAGIC"`, `cap_drop[0]: unknown capability "CAP_"`}},
		{name: "bad sysctls", opts: &berthv1.ContainerOptions{Sysctls: map[string]string{
			"kernel.hostname": "x", "vm.swappiness": "1", "net.ipv4.ip_forward": " ", "net.": "1", "kernel.semx": "1",
		}}, want: []string{
			`sysctls.kernel.hostname: "kernel.hostname" is not a kernel parameter of the container's own namespaces`,
			`sysctls.kernel.semx: "kernel.semx" is not`,
			`sysctls.net.: "net." is not`,
			"sysctls.net.ipv4.ip_forward: the value is empty",
			`sysctls.vm.swappiness: "vm.swappiness" is not`,
		}},
		{name: "net sysctl on the host network", opts: &berthv1.ContainerOptions{NetworkMode: "host", Sysctls: map[string]string{"net.core.somaxconn": "1"}},
			want: []string{"sysctls.net.core.somaxconn: with network_mode: host it would change the host's network"}},
		{name: "bad ulimits", opts: &berthv1.ContainerOptions{Ulimits: []*berthv1.Ulimit{
			{Name: "files", Soft: 1, Hard: 1}, {Name: "nofile", Soft: 10, Hard: 5}, {Name: "nofile", Soft: 1, Hard: 1},
			{Name: "nproc", Soft: -2, Hard: 1}, {Name: "core", Soft: -1, Hard: 10}, nil,
		}}, want: []string{
			`ulimits.files: unknown limit "files"; use one of as, core, cpu`,
			"ulimits.nofile: the soft limit 10 is above the hard limit 5",
			"ulimits.nofile: the limit is set twice",
			"ulimits.nproc: soft -2, hard 1: give limits of 0 or more, or -1 for no limit",
			"ulimits.core: the soft limit -1 is above the hard limit 10",
			"ulimits[5]: ulimit is missing",
		}},
		{name: "bad numbers and groups", opts: &berthv1.ContainerOptions{PidsLimit: -2, ShmSize: -1, GroupAdd: []string{"", "a b"}},
			want: []string{`group_add[0]: "" is not a group`, `group_add[1]: "a b" is not a group`, "pids_limit: -2 is not a limit", "shm_size: -1 bytes is negative"}},
		{name: "bad devices", opts: &berthv1.ContainerOptions{Devices: []string{"fuse", "/dev/a:/dev/b:rx", "/dev/a:/dev/b:r:w", "/dev/a:"}},
			want: []string{`devices[0]: "fuse": "fuse" is not an absolute path`, `devices[1]: "/dev/a:/dev/b:rx": permissions "rx"`, "devices[2]:", `devices[3]: "/dev/a:": "" is not an absolute path`}},
		{name: "namespaces other than host", opts: &berthv1.ContainerOptions{Pid: "service:db", Ipc: "shareable", NetworkMode: "none"},
			want: []string{`pid: "service:db" is not supported`, `ipc: "shareable" is not supported`, `network_mode: "none" is not supported`}},
		{name: "unknown security options", opts: &berthv1.ContainerOptions{SecurityOpt: []string{"apparmor=unconfined", "seccomp=/tmp/profile.json", "no-new-privileges:maybe"}},
			want: []string{`security_opt[0]: "apparmor=unconfined" is not supported`, "security_opt[1]:", "security_opt[2]:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkProblems(t, ValidateSpec("web", &berthv1.ServiceSpec{Image: "busybox", Container: tt.opts}), tt.want)
		})
	}
}

func TestNormalizeContainer(t *testing.T) {
	tests := []struct {
		name     string
		in, want *berthv1.ContainerOptions
	}{
		{name: "no options are none", in: &berthv1.ContainerOptions{}, want: nil},
		{name: "canonical names", in: &berthv1.ContainerOptions{
			CapAdd:      []string{"cap_net_admin", "ALL"},
			CapDrop:     []string{"net_raw"},
			SecurityOpt: []string{"no-new-privileges", "no-new-privileges=false", "seccomp:unconfined", "seccomp=default", "label=x"},
			Ulimits:     []*berthv1.Ulimit{{Name: "nproc", Soft: 1, Hard: 1}, {Name: "core"}},
		}, want: &berthv1.ContainerOptions{
			CapAdd:      []string{"NET_ADMIN", "ALL"},
			CapDrop:     []string{"NET_RAW"},
			SecurityOpt: []string{NoNewPrivileges, NewPrivilegesAllowed, SeccompUnconfined, SeccompDefault, "label=x"},
			Ulimits:     []*berthv1.Ulimit{{Name: "core"}, {Name: "nproc", Soft: 1, Hard: 1}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := &berthv1.ServiceSpec{Image: "busybox", Container: tt.in}
			Normalize(spec)
			if !proto.Equal(spec.GetContainer(), tt.want) {
				t.Errorf("Normalize() container = %v, want %v", spec.GetContainer(), tt.want)
			}
		})
	}
}

func TestValidateSpecPortRanges(t *testing.T) {
	const host = berthv1.PublishMode_PUBLISH_MODE_HOST
	tests := []struct {
		name     string
		ports    []*berthv1.PortSpec
		replicas uint64
		global   bool
		want     []string
	}{
		{name: "range for each replica", replicas: 5, ports: []*berthv1.PortSpec{{Target: 80, Published: 6005, PublishedEnd: 6009, Mode: host}}},
		{name: "mode unset becomes host", replicas: 1, ports: []*berthv1.PortSpec{{Target: 80, Published: 6005, PublishedEnd: 6006}}},
		{name: "global needs no port per replica", global: true, replicas: 9, ports: []*berthv1.PortSpec{{Target: 80, Published: 6005, PublishedEnd: 6006, Mode: host}}},
		{name: "too few ports", replicas: 5, ports: []*berthv1.PortSpec{{Target: 80, Published: 6005, PublishedEnd: 6008, Mode: host}},
			want: []string{"ports[0].published: the range 6005-6008 has 4 ports for 5 replicas"}},
		{name: "ingress range", replicas: 1, ports: []*berthv1.PortSpec{{Target: 80, Published: 6005, PublishedEnd: 6008, Mode: berthv1.PublishMode_PUBLISH_MODE_INGRESS}},
			want: []string{"ports[0].mode: the range 6005-6008 publishes a port of each task on its node, which needs mode: host"}},
		{name: "bad bounds", replicas: 1, ports: []*berthv1.PortSpec{
			{Target: 80, PublishedEnd: 6008, Mode: host}, {Target: 81, Published: 6008, PublishedEnd: 6005, Mode: host},
			{Target: 82, Published: 65535, PublishedEnd: 70000, Mode: host},
		}, want: []string{
			"ports[0].published: a range ending at 6008 needs its first port",
			"ports[1].published: the range 6008-6005 ends before it starts",
			"ports[2].published: the range 65535-70000 ends out of range",
		}},
		{name: "range overlaps a port", replicas: 1, ports: []*berthv1.PortSpec{
			{Target: 80, Published: 6005, PublishedEnd: 6010, Mode: host}, {Target: 81, Published: 6010, Mode: host},
			{Target: 82, Published: 6000, PublishedEnd: 6005, Mode: host, Protocol: "udp"}, {Target: 83, Published: 5990, PublishedEnd: 6005, Mode: host},
		}, want: []string{
			"ports[1].published: tcp port 6010 is already published by ports[0]",
			"ports[3].published: tcp ports 5990-6005 are already published by ports[0]",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := &berthv1.ServiceSpec{Image: "busybox", Ports: tt.ports, Replicas: tt.replicas}
			if tt.global {
				spec.Mode = berthv1.ServiceMode_SERVICE_MODE_GLOBAL
			}
			checkProblems(t, ValidateSpec("web", spec), tt.want)
			Normalize(spec)
			checkProblems(t, ValidateSpec("web", spec), tt.want)
		})
	}
}
