package apiserver

import (
	"context"
	"slices"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
	"google.golang.org/grpc/codes"
)

func bind(source string) *berthv1.Mount {
	return &berthv1.Mount{Type: berthv1.MountType_MOUNT_TYPE_BIND, Source: source, Target: "/mnt"}
}

func TestSecurityProblems(t *testing.T) {
	none := &berthv1.ClusterSettings{}
	srv := &berthv1.ClusterSettings{AllowedBindMounts: []string{"/srv/data", "/var/log/"}}
	all := &berthv1.ClusterSettings{AllowedBindMounts: []string{"/"}, AllowPrivileged: true, AllowHostNamespaces: true}
	tests := []struct {
		name     string
		spec     *berthv1.ServiceSpec
		settings *berthv1.ClusterSettings
		want     []validation.FieldError
	}{
		{name: "nothing to check", spec: &berthv1.ServiceSpec{Mounts: []*berthv1.Mount{
			{Type: berthv1.MountType_MOUNT_TYPE_VOLUME, Source: "shop_data", Target: "/data"},
			{Type: berthv1.MountType_MOUNT_TYPE_TMPFS, Target: "/tmp"},
		}, Container: &berthv1.ContainerOptions{CapAdd: []string{"NET_ADMIN"}, SecurityOpt: []string{"no-new-privileges", "seccomp=/etc/profile.json"}}},
			settings: none},
		{name: "bind mount with no prefix allowed", spec: &berthv1.ServiceSpec{Mounts: []*berthv1.Mount{{Source: "x", Target: "/x"}, bind("/etc")}},
			settings: none,
			want: []validation.FieldError{{Service: "web", Field: "volumes[1].source",
				Reason: "bind mount /etc is not under an allowed prefix; allow it with: berth cluster settings --allow-bind-mount /etc"}}},
		{name: "bind mount under a prefix", spec: &berthv1.ServiceSpec{Mounts: []*berthv1.Mount{bind("/srv/data/db"), bind("/srv/data"), bind("/var/log/app/")}},
			settings: srv},
		{name: "a prefix is not a string prefix", spec: &berthv1.ServiceSpec{Mounts: []*berthv1.Mount{bind("/srv/database")}},
			settings: srv,
			want: []validation.FieldError{{Service: "web", Field: "volumes[0].source",
				Reason: "bind mount /srv/database is not under an allowed prefix; allow it with: berth cluster settings --allow-bind-mount /srv/database"}}},
		{name: "path traversal", spec: &berthv1.ServiceSpec{Mounts: []*berthv1.Mount{bind("/srv/data/../../etc"), bind("/srv/data/./db/../logs")}},
			settings: srv,
			want: []validation.FieldError{{Service: "web", Field: "volumes[0].source",
				Reason: "bind mount /srv/data/../../etc (/etc) is not under an allowed prefix; allow it with: berth cluster settings --allow-bind-mount /etc"}}},
		{name: "relative bind source", spec: &berthv1.ServiceSpec{Mounts: []*berthv1.Mount{bind("srv/data")}},
			settings: all,
			want: []validation.FieldError{{Service: "web", Field: "volumes[0].source",
				Reason: `bind mount source "srv/data" is not an absolute path; name the host path from /`}}},
		{name: "every privilege refused", spec: &berthv1.ServiceSpec{Container: &berthv1.ContainerOptions{
			Privileged:  true,
			Devices:     []string{"/dev/fuse", "/dev/sda:/dev/xvda:rwm"},
			CapAdd:      []string{"NET_ADMIN", "all"},
			SecurityOpt: []string{"label=disable", "no-new-privileges:false", "seccomp=unconfined", "no-new-privileges=true"},
		}}, settings: none,
			want: []validation.FieldError{
				{Service: "web", Field: "privileged", Reason: "privileged mode is not allowed; allow it with: berth cluster settings --allow-privileged"},
				{Service: "web", Field: "devices[0]", Reason: "host device /dev/fuse is not allowed; allow it with: berth cluster settings --allow-privileged"},
				{Service: "web", Field: "devices[1]", Reason: "host device /dev/sda is not allowed; allow it with: berth cluster settings --allow-privileged"},
				{Service: "web", Field: "cap_add[1]", Reason: "cap_add ALL gives every capability and is not allowed; allow it with: berth cluster settings --allow-privileged"},
				{Service: "web", Field: "security_opt[1]", Reason: `security_opt "no-new-privileges:false" turns off no_new_privileges, which is not allowed; allow it with: berth cluster settings --allow-privileged`},
				{Service: "web", Field: "security_opt[2]", Reason: `security_opt "seccomp=unconfined" turns off seccomp, which is not allowed; allow it with: berth cluster settings --allow-privileged`},
			}},
		{name: "host namespaces refused", spec: &berthv1.ServiceSpec{Container: &berthv1.ContainerOptions{Pid: "host", Ipc: "host", NetworkMode: "host"}},
			settings: &berthv1.ClusterSettings{AllowPrivileged: true},
			want: []validation.FieldError{
				{Service: "web", Field: "pid", Reason: "sharing the host's process namespace is not allowed; allow it with: berth cluster settings --allow-host-namespaces"},
				{Service: "web", Field: "ipc", Reason: "sharing the host's IPC namespace is not allowed; allow it with: berth cluster settings --allow-host-namespaces"},
				{Service: "web", Field: "network_mode", Reason: "sharing the host's network namespace is not allowed; allow it with: berth cluster settings --allow-host-namespaces"},
			}},
		{name: "everything allowed", spec: &berthv1.ServiceSpec{Mounts: []*berthv1.Mount{bind("/etc")}, Container: &berthv1.ContainerOptions{
			Privileged: true, Devices: []string{"/dev/fuse"}, CapAdd: []string{"ALL"}, SecurityOpt: []string{"seccomp:unconfined"},
			Pid: "host", Ipc: "host", NetworkMode: "host",
		}}, settings: all},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := securityProblems("web", tc.spec, tc.settings)
			if !slices.Equal(got, validation.Errors(tc.want)) {
				t.Errorf("got:\n%v\nwant:\n%v", got, validation.Errors(tc.want))
			}
		})
	}
}

func TestApplyChecksHostAccessSettings(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	web := svc("web", "busybox", 1)
	web.Spec.Mounts = []*berthv1.Mount{bind("/srv/data/db")}
	web.Spec.Container = &berthv1.ContainerOptions{Privileged: true}
	before := etcdRevision(t, s)
	_, err := s.Apply(ctx, &berthv1.ApplyRequest{App: "shop", Services: []*berthv1.Service{web, svc("db", "busybox", 1)}})
	wantCode(t, "apply refused", err, codes.InvalidArgument,
		`service "web": volumes[0].source: bind mount /srv/data/db is not under an allowed prefix; allow it with: berth cluster settings --allow-bind-mount /srv/data/db`,
		`service "web": privileged: privileged mode is not allowed`)
	if errs, ok := validation.FromError(err); !ok || len(errs) != 2 {
		t.Errorf("field errors %v, want 2", errs)
	}
	if etcdRevision(t, s) != before {
		t.Error("a refused apply wrote something")
	}

	if _, err := s.UpdateSettings(ctx, &berthv1.UpdateSettingsRequest{Settings: &berthv1.ClusterSettings{AllowedBindMounts: []string{"srv"}}}); err == nil {
		t.Fatal("a relative allowed bind mount was taken")
	} else {
		wantCode(t, "relative prefix", err, codes.InvalidArgument, `allowed bind mount "srv" is not an absolute path`)
	}
	got, err := s.UpdateSettings(ctx, &berthv1.UpdateSettingsRequest{Settings: &berthv1.ClusterSettings{
		AllowedBindMounts: []string{"/srv/data/", "/srv/data", "/opt/../srv/x", ""}, AllowPrivileged: true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/srv/data", "/srv/x"}; !slices.Equal(got.AllowedBindMounts, want) || !got.AllowPrivileged || got.AllowHostNamespaces {
		t.Errorf("stored settings %v, want prefixes %v and privileged only", got, want)
	}
	if _, err := s.Apply(ctx, &berthv1.ApplyRequest{App: "shop", Services: []*berthv1.Service{web, svc("db", "busybox", 1)}}); err != nil {
		t.Errorf("apply once allowed: %v", err)
	}
}
