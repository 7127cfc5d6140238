package validation

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

const (
	volumeType = berthv1.MountType_MOUNT_TYPE_VOLUME
	bindType   = berthv1.MountType_MOUNT_TYPE_BIND
	tmpfsType  = berthv1.MountType_MOUNT_TYPE_TMPFS
)

// checkProblems compares problems with want, "field: reason substring"
// each, in order.
func checkProblems(t *testing.T, errs Errors, want []string) {
	t.Helper()
	if len(errs) != len(want) {
		t.Fatalf("%d problems:\n%v\nwant %d: %q", len(errs), errs, len(want), want)
	}
	for i, w := range want {
		got := errs[i].Field + ": " + errs[i].Reason
		if errs[i].Service != "" && errs[i].Service != "web" {
			got = "service " + errs[i].Service + ": " + got
		}
		if !strings.Contains(got, w) {
			t.Errorf("problem %d = %q, want it to contain %q", i, got, w)
		}
	}
}

func TestValidateSpecStorage(t *testing.T) {
	tests := []struct {
		name   string
		mounts []*berthv1.Mount
		// secrets and configs default to none.
		secrets, configs []*berthv1.FileReference
		want             []string
	}{
		{name: "every kind", mounts: []*berthv1.Mount{
			{Type: volumeType, Source: "shop_data", Target: "/data", NoCopy: true, Subpath: "db/main"},
			{Source: "shop_logs", Target: "/logs", External: true},
			{Type: volumeType, Target: "/scratch"},
			{Type: bindType, Source: "/srv/site", Target: "/site", ReadOnly: true},
			{Type: tmpfsType, Target: "/tmp", TmpfsSize: 64 << 20, TmpfsMode: 0o1777},
		},
			secrets: []*berthv1.FileReference{{Name: "shop_pw", Target: "pw", Mode: 0o400, Uid: 1}, {Name: "shop_pw", Target: "/etc/pw"}},
			configs: []*berthv1.FileReference{{Name: "shop_cfg", Target: "etc/app.conf"}}},
		{name: "relative target", mounts: []*berthv1.Mount{{Source: "shop_data", Target: "data"}},
			want: []string{`volumes[0].target: "data" is not an absolute path; write it from the container's root, like /data`}},
		{name: "empty and root targets", mounts: []*berthv1.Mount{{Target: ""}, {Type: tmpfsType, Target: "/"}},
			want: []string{"volumes[0].target: the target is empty", "volumes[1].target: nothing can be mounted over the container's root"}},
		{name: "duplicate target", mounts: []*berthv1.Mount{
			{Source: "shop_data", Target: "/data"}, {Type: tmpfsType, Target: "/data/"},
		}, want: []string{"volumes[1].target: /data is also the target of volumes[0].target"}},
		{name: "secret on a mount's target", mounts: []*berthv1.Mount{{Type: tmpfsType, Target: "/run/secrets/pw"}},
			secrets: []*berthv1.FileReference{{Name: "shop_pw", Target: "pw"}},
			want:    []string{"secrets[0].target: /run/secrets/pw is also the target of volumes[0].target"}},
		{name: "two configs at one path", configs: []*berthv1.FileReference{{Name: "a", Target: "/etc/x"}, {Name: "b", Target: "etc/x"}},
			want: []string{"configs[1].target: /etc/x is also the target of configs[0].target"}},
		{name: "bad names", mounts: []*berthv1.Mount{{Source: "no/slash", Target: "/a"}},
			secrets: []*berthv1.FileReference{{Name: "", Target: "x"}}, configs: []*berthv1.FileReference{{Name: "-x", Target: "/x"}},
			want: []string{`volumes[0].source: volume name "no/slash" is not valid`, "secrets[0].source: secret name is empty", `configs[0].source: config name "-x" is not valid`}},
		{name: "empty file target", secrets: []*berthv1.FileReference{{Name: "pw"}},
			want: []string{"secrets[0].target: the target is empty"}},
		{name: "file target is a directory", configs: []*berthv1.FileReference{{Name: "c", Target: "/etc/"}},
			want: []string{`configs[0].target: "/etc/" names a directory`}},
		{name: "bad mode", secrets: []*berthv1.FileReference{{Name: "pw", Target: "pw", Mode: 0o1000}},
			want: []string{"secrets[0].mode: 01000 is out of range"}},
		{name: "bind of a relative path", mounts: []*berthv1.Mount{{Type: bindType, Source: "site", Target: "/site"}},
			want: []string{`volumes[0].source: "site" is not an absolute path of the node`}},
		{name: "options of another type", mounts: []*berthv1.Mount{
			{Type: bindType, Source: "/srv", Target: "/a", NoCopy: true, TmpfsSize: 1, External: true},
			{Type: tmpfsType, Source: "x", Target: "/b", TmpfsSize: -1, TmpfsMode: 0o17777},
			{Target: "/c", External: true},
		}, want: []string{
			"volumes[0].tmpfs: size and mode apply to type: tmpfs only",
			"volumes[0].volume: nocopy and subpath apply to type: volume only",
			"volumes[0].external: only a named volume can be external",
			"volumes[1].source: a tmpfs mount has no source",
			"volumes[1].tmpfs.size: -1 bytes is negative",
			"volumes[1].tmpfs.mode: 017777 is not a file mode",
			"volumes[2].external: a volume without a source",
		}},
		{name: "bad subpaths", mounts: []*berthv1.Mount{
			{Source: "v", Target: "/a", Subpath: "/abs"}, {Source: "v", Target: "/b", Subpath: "../up"}, {Source: "v", Target: "/c", Subpath: "a/./b"},
		}, want: []string{`volumes[0].volume.subpath: "/abs" is not a path inside the volume`, `volumes[1].volume.subpath: "../up"`, `volumes[2].volume.subpath: "a/./b"`}},
		{name: "unknown type", mounts: []*berthv1.Mount{{Type: 9, Target: "/a"}},
			want: []string{"volumes[0].type: unknown mount type 9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := &berthv1.ServiceSpec{Image: "busybox", Mounts: tt.mounts, Secrets: tt.secrets, Configs: tt.configs}
			checkProblems(t, ValidateSpec("web", spec), tt.want)
		})
	}
}

func TestNormalizeStorage(t *testing.T) {
	spec := &berthv1.ServiceSpec{
		Image:   "busybox",
		Mounts:  []*berthv1.Mount{{Source: "v", Target: "/data/"}, {Type: tmpfsType, Target: "/tmp"}},
		Secrets: []*berthv1.FileReference{{Name: "a", Target: "a"}, {Name: "b", Target: "/etc/b", Mode: 0o400}},
		Configs: []*berthv1.FileReference{{Name: "c", Target: "etc/c.conf"}},
	}
	Normalize(spec)
	want := &berthv1.ServiceSpec{
		Image:   "busybox",
		Mounts:  []*berthv1.Mount{{Type: volumeType, Source: "v", Target: "/data"}, {Type: tmpfsType, Target: "/tmp"}},
		Secrets: []*berthv1.FileReference{{Name: "a", Target: "/run/secrets/a", Mode: 0o444}, {Name: "b", Target: "/etc/b", Mode: 0o400}},
		Configs: []*berthv1.FileReference{{Name: "c", Target: "/etc/c.conf", Mode: 0o444}},
	}
	Normalize(want)
	if !proto.Equal(spec, want) {
		t.Errorf("Normalize() =\n%v\nwant\n%v", spec, want)
	}
	again := proto.Clone(spec).(*berthv1.ServiceSpec)
	Normalize(again)
	if !proto.Equal(again, spec) {
		t.Errorf("Normalize() twice =\n%v\nwant\n%v", again, spec)
	}
}

func TestValidateStorage(t *testing.T) {
	uses := &berthv1.ServiceSpec{
		Image: "busybox",
		Mounts: []*berthv1.Mount{
			{Source: "shop_data", Target: "/data"}, {Target: "/scratch"}, {Type: bindType, Source: "/srv", Target: "/srv"},
			{Source: "shop_gone", Target: "/gone"},
		},
		Secrets: []*berthv1.FileReference{{Name: "shop_pw", Target: "pw"}, {Name: "shop_nope", Target: "nope"}},
		Configs: []*berthv1.FileReference{{Name: "shop_cfg", Target: "/cfg"}, {Name: "shop_none", Target: "/none"}},
	}
	tests := []struct {
		name string
		req  *berthv1.ApplyRequest
		want []string
	}{
		{name: "defined", req: &berthv1.ApplyRequest{
			Volumes: []*berthv1.AppVolume{{Name: "shop_data", Key: "data"}, {Name: "logs", Key: "logs", External: true}},
			Secrets: []*berthv1.AppFile{{Name: "shop_pw", Key: "pw", Data: []byte("x")}, {Name: "shared", Key: "shared", External: true}},
			Configs: []*berthv1.AppFile{{Name: "shop_cfg", Key: "cfg", Data: make([]byte, MaxFileSize)}},
			Services: []*berthv1.Service{{Name: "web", Spec: &berthv1.ServiceSpec{
				Image:   "busybox",
				Mounts:  []*berthv1.Mount{{Source: "shop_data", Target: "/data"}, {Source: "logs", Target: "/logs", External: true}},
				Secrets: []*berthv1.FileReference{{Name: "shared", Target: "s"}},
			}}},
		}},
		{name: "used but not defined", req: &berthv1.ApplyRequest{
			Volumes:  []*berthv1.AppVolume{{Name: "shop_data", Key: "data"}},
			Secrets:  []*berthv1.AppFile{{Name: "shop_pw", Key: "pw"}},
			Configs:  []*berthv1.AppFile{{Name: "shop_cfg", Key: "cfg"}},
			Services: []*berthv1.Service{{Name: "web", Spec: uses}},
		}, want: []string{
			`volumes[3].source: volume "shop_gone" is not defined`,
			`secrets[1].source: secret "shop_nope" is not defined`,
			`configs[1].source: config "shop_none" is not defined`,
		}},
		{name: "bad definitions", req: &berthv1.ApplyRequest{
			Volumes: []*berthv1.AppVolume{{Name: "shop_data", Key: "data"}, {Name: "shop_data", Key: "again"}, {Name: "bad name", Key: "bad"}, nil},
			Secrets: []*berthv1.AppFile{
				{Name: "big", Key: "big", Data: make([]byte, MaxFileSize+1)},
				{Name: "ext", Key: "ext", External: true, Data: []byte("x")},
				{Name: "big", Key: "twice"},
			},
			Configs: []*berthv1.AppFile{{Name: "a/b", Key: "slash"}},
		}, want: []string{
			`volumes.again.name: volume "shop_data" is defined twice`,
			`volumes.bad.name: volume name "bad name" is not valid`,
			"volumes[3]: volume is missing",
			`secrets.big: secret "big" holds 512001 bytes, more than the 500 KiB a secret may hold`,
			"secrets.ext: an external secret exists already and takes no data",
			`secrets.twice: secret "big" is defined twice`,
			`configs.slash.name: config name "a/b" is not valid`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkProblems(t, ValidateStorage(tt.req), tt.want)
		})
	}
}

func TestValidateServiceNames(t *testing.T) {
	tests := []struct {
		name    string
		wantErr string // "" means valid
	}{
		{name: "web"},
		{name: "serviceA"},
		{name: "API-2"},
		{name: "", wantErr: "service name is empty"},
		{name: "my_web", wantErr: `service name "my_web" is not a valid DNS name`},
		{name: "Web-", wantErr: `for example "web"`},
		{name: "a b", wantErr: `invalid service name "a b"`},
		{name: strings.Repeat("A", 64), wantErr: "at most 63"},
	}
	for _, tt := range tests {
		err := ValidateServiceName(tt.name)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ValidateServiceName(%q) = %v, want nil", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ValidateServiceName(%q) = %v, want error containing %q", tt.name, err, tt.wantErr)
		}
	}

	req := &berthv1.ApplyRequest{Namespace: "default", App: "shop", Services: []*berthv1.Service{
		{Name: "serviceA", Spec: &berthv1.ServiceSpec{Image: "busybox", Networks: []*berthv1.ServiceNetwork{{Network: "shop_default"}}}},
		{Name: "ServiceA", Spec: &berthv1.ServiceSpec{Image: "busybox"}},
		{Name: "db", Spec: &berthv1.ServiceSpec{Image: "busybox", Networks: []*berthv1.ServiceNetwork{{Network: "shop_default", Aliases: []string{"servicea"}}}}},
	}}
	checkProblems(t, ValidateApply(req), []string{
		`service ServiceA: : the name differs from service "serviceA" only in case`,
		`service db: networks.shop_default.aliases[0]: alias "servicea" is the name of another service`,
	})
}
