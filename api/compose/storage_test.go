package compose

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
)

// TestLoadStatefulApp loads testdata/stateful, a web + database app that
// uses every volume, secret, config and container key Berth honours.
func TestLoadStatefulApp(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("testdata", "stateful"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Load(context.Background(), Options{
		Files:       []string{filepath.Join(dir, "compose.yaml")},
		Environment: map[string]string{"API_TOKEN": "tok-123", "NPM_TOKEN": "npm-456", "SHOP_NAME": "the shop"},
	})
	if err != nil {
		t.Fatalf("Load() error:\n%v", err)
	}
	if len(p.Warnings) != 0 {
		t.Errorf("Warnings = %q, want none", p.Warnings)
	}
	specs := map[string]*berthv1.ServiceSpec{}
	for _, s := range p.Services {
		specs[s.GetName()] = s.GetSpec()
	}

	wantVolumes := []*berthv1.AppVolume{
		{Name: "shared-backups", Key: "backups", External: true},
		{Name: "shop_db-data", Key: "db-data", Labels: map[string]string{"tier": "db"}},
	}
	// npm_token only builds use: it is not sent with the app.
	wantSecrets := []*berthv1.AppFile{
		{Name: "shop_api_token", Key: "api_token", Data: []byte("tok-123")},
		{Name: "shop_db_password", Key: "db_password", Data: []byte("pg-password\n")},
		{Name: "shared", Key: "shared", External: true},
	}
	wantConfigs := []*berthv1.AppFile{
		{Name: "shop_motd", Key: "motd", Data: []byte("welcome to the shop")},
		{Name: "shop_nginx", Key: "nginx", Data: []byte("listen 80;\n")},
	}
	for _, c := range []struct {
		name      string
		got, want []proto.Message
	}{
		{"volumes", messages(p.Volumes), messages(wantVolumes)},
		{"secrets", messages(p.Secrets), messages(wantSecrets)},
		{"configs", messages(p.Configs), messages(wantConfigs)},
	} {
		if !equalMessages(c.got, c.want) {
			t.Errorf("%s =\n%v\nwant\n%v", c.name, c.got, c.want)
		}
	}

	db := specs["db"]
	wantMounts := []*berthv1.Mount{
		{Type: volumeMount, Source: "shop_db-data", Target: "/var/lib/postgresql/data"},
		{Type: volumeMount, Source: "shared-backups", Target: "/backups", ReadOnly: true, NoCopy: true, Subpath: "shop", External: true},
		{Type: volumeMount, Target: "/scratch"},
		{Type: berthv1.MountType_MOUNT_TYPE_BIND, Source: filepath.Join(dir, "initdb"), Target: "/docker-entrypoint-initdb.d", ReadOnly: true},
		{Type: tmpfsType, Target: "/var/run/postgresql", TmpfsSize: 16 << 20, TmpfsMode: 0o1777},
		{Type: tmpfsType, Target: "/tmp", TmpfsSize: 64 << 20, TmpfsMode: 0o1777},
	}
	if !equalMessages(messages(db.GetMounts()), messages(wantMounts)) {
		t.Errorf("mounts of db =\n%v\nwant\n%v", db.GetMounts(), wantMounts)
	}
	wantDBSecrets := []*berthv1.FileReference{
		{Name: "shop_db_password", Target: "/run/secrets/db_password", Mode: 0o444},
		{Name: "shop_api_token", Target: "/run/secrets/token", Uid: 999, Gid: 999, Mode: 0o400},
	}
	if !equalMessages(messages(db.GetSecrets()), messages(wantDBSecrets)) {
		t.Errorf("secrets of db =\n%v\nwant\n%v", db.GetSecrets(), wantDBSecrets)
	}
	wantDBOptions := &berthv1.ContainerOptions{
		Init:      true,
		ShmSize:   256 << 20,
		PidsLimit: 200,
		Ulimits:   []*berthv1.Ulimit{{Name: "nofile", Soft: 20000, Hard: 40000}, {Name: "nproc", Soft: 65535, Hard: 65535}},
		Sysctls:   map[string]string{"net.core.somaxconn": "1024", "kernel.shmmax": "68719476736"},
	}
	if !proto.Equal(db.GetContainer(), wantDBOptions) {
		t.Errorf("container options of db = %v, want %v", db.GetContainer(), wantDBOptions)
	}
	wantConstraints := []string{"node.role == manager", "node.platform.os==linux", "node.platform.arch==amd64"}
	if got := db.GetPlacement().GetConstraints(); strings.Join(got, " ") != strings.Join(wantConstraints, " ") {
		t.Errorf("constraints of db = %q, want %q", got, wantConstraints)
	}

	// A service name with capital letters is kept as it is.
	web := specs["webApp"]
	if web == nil {
		t.Fatalf("services = %v, want one named webApp", p.Services)
	}
	wantPorts := []*berthv1.PortSpec{{Target: 80, Published: 6005, PublishedEnd: 6015, Protocol: "tcp", Mode: berthv1.PublishMode_PUBLISH_MODE_HOST}}
	if !equalMessages(messages(web.GetPorts()), messages(wantPorts)) {
		t.Errorf("ports of webApp = %v, want %v", web.GetPorts(), wantPorts)
	}
	wantWebConfigs := []*berthv1.FileReference{
		{Name: "shop_nginx", Target: "/nginx", Mode: 0o444},
		{Name: "shop_motd", Target: "/etc/motd", Mode: 0o440},
	}
	if !equalMessages(messages(web.GetConfigs()), messages(wantWebConfigs)) {
		t.Errorf("configs of webApp =\n%v\nwant\n%v", web.GetConfigs(), wantWebConfigs)
	}
	if got := web.GetSecrets(); len(got) != 1 || got[0].GetTarget() != "/etc/web/token" {
		t.Errorf("secrets of webApp = %v, want api_token at /etc/web/token", got)
	}
	wantWebOptions := &berthv1.ContainerOptions{
		ReadOnly: true, CapDrop: []string{"ALL"}, CapAdd: []string{"NET_BIND_SERVICE", "CHOWN"},
		GroupAdd: []string{"audio"}, SecurityOpt: []string{"no-new-privileges:true"},
	}
	if !proto.Equal(web.GetContainer(), wantWebOptions) {
		t.Errorf("container options of webApp = %v, want %v", web.GetContainer(), wantWebOptions)
	}
	wantBuild := &berthv1.BuildSpec{
		Context:          ".",
		DockerfileInline: "FROM nginx:1.27\nRUN --mount=type=secret,id=npm cat /run/secrets/npm\n",
		Secrets:          []string{"npm"},
	}
	if !proto.Equal(web.GetBuild(), wantBuild) {
		t.Errorf("build of webApp = %v, want %v", web.GetBuild(), wantBuild)
	}
	if got := p.BuildSecrets["webApp"]; len(got) != 1 || got[0].GetId() != "npm" || string(got[0].GetData()) != "npm-456" {
		t.Errorf("build secrets of webApp = %v, want npm", got)
	}
	if len(p.BuildSecrets) != 1 {
		t.Errorf("build secrets = %v, want webApp's only", p.BuildSecrets)
	}
	// No secret's data is anywhere in a spec.
	for _, s := range p.Services {
		text := s.GetSpec().String()
		for _, secret := range []string{"tok-123", "npm-456", "pg-password"} {
			if strings.Contains(text, secret) {
				t.Errorf("the spec of %s holds the data of a secret: %s", s.GetName(), text)
			}
		}
	}
}

const (
	volumeMount = berthv1.MountType_MOUNT_TYPE_VOLUME
	tmpfsType   = berthv1.MountType_MOUNT_TYPE_TMPFS
)

func messages[T proto.Message](list []T) []proto.Message {
	out := make([]proto.Message, len(list))
	for i, m := range list {
		out[i] = m
	}
	return out
}

func equalMessages(a, b []proto.Message) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// TestLoadShortForms loads the short and list forms of the keys, which
// compose-go turns into long ones, and checks that none is warned about.
func TestLoadShortForms(t *testing.T) {
	dir := writeProject(t, map[string]string{"compose.yaml": `
services:
  web:
    image: busybox
    devices: ["/dev/fuse", "/dev/sda:/dev/xvda:rwm", "/dev/sdb:/dev/xvdb:r"]
    sysctls: ["net.core.somaxconn=1024"]
    ulimits: {nproc: 100}
    tmpfs: /run
    secrets: [pw]
    configs: [c]
    volumes: ["data:/data:nocopy", "./x:/x:ro", "/anon"]
    network_mode: bridge
    ipc: shareable
volumes:
  data:
secrets:
  pw: {environment: PW}
configs:
  c: {content: x}
`})
	p, err := loadDir(t, dir, Options{Environment: map[string]string{"PW": ""}})
	if err != nil {
		t.Fatalf("Load() error:\n%v", err)
	}
	if len(p.Warnings) != 0 {
		t.Errorf("Warnings = %q, want none", p.Warnings)
	}
	spec := p.Services[0].GetSpec()
	want := &berthv1.ContainerOptions{
		Devices: []string{"/dev/fuse", "/dev/sda:/dev/xvda", "/dev/sdb:/dev/xvdb:r"},
		Sysctls: map[string]string{"net.core.somaxconn": "1024"},
		Ulimits: []*berthv1.Ulimit{{Name: "nproc", Soft: 100, Hard: 100}},
	}
	if !proto.Equal(spec.GetContainer(), want) {
		t.Errorf("container options = %v, want %v", spec.GetContainer(), want)
	}
	if n := len(spec.GetMounts()); n != 4 {
		t.Errorf("mounts = %v, want 4", spec.GetMounts())
	}
	// An empty variable is set: the secret is empty.
	if len(p.Secrets) != 1 || len(p.Secrets[0].GetData()) != 0 {
		t.Errorf("secrets = %v, want pw, empty", p.Secrets)
	}
}

func TestLoadStorageErrors(t *testing.T) {
	big := strings.Repeat("x", validation.MaxFileSize+1)
	tests := []struct {
		name  string
		files map[string]string
		env   map[string]string
		// want are substrings of the problems, in order, which are count.
		want  []string
		count int
	}{
		{
			name: "volume not defined",
			files: map[string]string{"compose.yaml": `services:
  web:
    image: busybox
    volumes:
      - data:/data
      - type: volume
        source: logs
        target: /logs
`},
			want: []string{
				`compose.yaml:5: service "web": volumes[0].source: volume "data" is not defined; add it under the top-level volumes: key`,
				`compose.yaml:7: service "web": volumes[1].source: volume "logs" is not defined`,
			},
		},
		{
			name:  "secret and config not defined",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    secrets: [pw]\n    configs:\n      - source: cfg\n"},
			want: []string{
				`compose.yaml:4: service "web": secrets[0].source: secret "pw" is not defined; add it under the top-level secrets: key`,
				`compose.yaml:6: service "web": configs[0].source: config "cfg" is not defined`,
			},
		},
		{
			name:  "secret file missing",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    secrets: [pw]\nsecrets:\n  pw:\n    file: ./pw.txt\n"},
			want:  []string{`compose.yaml:7: secrets.pw.file: secret "pw": cannot read file `, `pw.txt: no such file or directory; create it, or fix the path`},
			count: 1,
		},
		{
			name:  "secret file too big",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\nsecrets:\n  pw:\n    file: ./pw.txt\n", "pw.txt": big},
			want:  []string{`compose.yaml:6: secrets.pw.file: secret "pw": file `, `pw.txt holds 512001 bytes, more than the 500 KiB a secret may hold`},
			count: 1,
		},
		{
			name:  "config content too big",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\nconfigs:\n  c:\n    content: " + big + "\n"},
			want:  []string{`compose.yaml:6: configs.c.content: config "c": holds 512001 bytes, more than the 500 KiB a config may hold`},
		},
		{
			name:  "environment variable unset",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\nsecrets:\n  pw:\n    environment: DB_PASSWORD\nconfigs:\n  c:\n    environment: APP_CONFIG\n"},
			want: []string{
				`compose.yaml:6: secrets.pw.environment: secret "pw": environment variable DB_PASSWORD is not set; set it in the environment or in .env`,
				`compose.yaml:9: configs.c.environment: config "c": environment variable APP_CONFIG is not set`,
			},
		},
		{
			name:  "config with no data",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\nconfigs:\n  c:\n    labels: {a: b}\n"},
			// compose-go's schema says it first.
			want: []string{`compose.yaml: configs.c: one of file|environment|content must be set`},
		},
		{
			name: "mode not octal",
			files: map[string]string{"compose.yaml": `services:
  web:
    image: busybox
    secrets:
      - source: pw
        uid: root
        gid: "-1"
        mode: 01000
    configs:
      - source: c
        mode: "0999"
secrets:
  pw: {environment: PW}
configs:
  c: {content: x}
`},
			env: map[string]string{"PW": "x"},
			want: []string{
				`compose.yaml:11: service "web": configs[0].mode: invalid value: strconv.ParseInt: parsing "0999": invalid syntax; give permission bits in octal, like 0440`,
			},
		},
		{
			name: "bad uid, gid and mode",
			files: map[string]string{"compose.yaml": `services:
  web:
    image: busybox
    secrets:
      - source: pw
        uid: root
        gid: "-1"
        mode: 01000
secrets:
  pw: {environment: PW}
`},
			env: map[string]string{"PW": "x"},
			want: []string{
				`compose.yaml:6: service "web": secrets[0].uid: "root" is not a number; give a numeric id, like 1000`,
				`compose.yaml:7: service "web": secrets[0].gid: "-1" is not a number`,
				`compose.yaml:8: service "web": secrets[0].mode: 01000 is out of range; give permission bits in octal from 0 to 0777`,
			},
		},
		{
			name: "duplicate and relative targets",
			files: map[string]string{"compose.yaml": `services:
  web:
    image: busybox
    volumes:
      - type: volume
        source: data
        target: data
      - /tmp
    tmpfs: [/tmp, /run, /run/]
    secrets:
      - source: pw
        target: /etc/pw
    configs:
      - source: c
        target: etc/pw
volumes:
  data: {}
secrets:
  pw: {environment: PW}
configs:
  c: {content: x}
`},
			env: map[string]string{"PW": "x"},
			want: []string{
				`compose.yaml:7: service "web": volumes[0].target: "data" is not an absolute path; write it from the container's root, like /data`,
				`compose.yaml:9: service "web": tmpfs[0]: /tmp is also the target of volumes[1].target`,
				`compose.yaml:9: service "web": tmpfs[2]: /run is also the target of tmpfs[1];`,
				`compose.yaml:15: service "web": configs[0].target: /etc/pw is also the target of secrets[0].target`,
			},
		},
		{
			name:  "volume driver and options",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\nvolumes:\n  a: {driver: rexray}\n  b:\n    driver_opts: {type: nfs, o: addr=10.0.0.1}\n  c: {external: true}\n"},
			want: []string{
				`compose.yaml:5: volumes.a.driver: driver "rexray" is not supported`,
				`compose.yaml:7: volumes.b.driver_opts: driver options are not supported`,
			},
		},
		{
			name:  "tmpfs options",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n    tmpfs:\n      - /a:noexec\n      - /b:size=lots\n      - /c:mode=999\n"},
			want: []string{
				`compose.yaml:5: service "web": tmpfs[0]: "/a:noexec": option "noexec" is not supported; use size=, mode=, ro or rw`,
				`compose.yaml:6: service "web": tmpfs[1]: "/b:size=lots": size "lots" is not a size`,
				`compose.yaml:7: service "web": tmpfs[2]: "/c:mode=999": mode "999" is not a file mode`,
			},
		},
		{
			name: "build secrets",
			files: map[string]string{"compose.yaml": `services:
  web:
    build:
      context: .
      secrets: [npm, shared, gone, {source: npm2, target: npm}]
secrets:
  npm: {environment: NPM}
  npm2: {environment: NPM}
  shared: {external: true}
`, "Dockerfile": "FROM scratch\n"},
			env: map[string]string{"NPM": "x"},
			want: []string{
				`service "web": build.secrets[1]: secret "shared" is external: its data stays in the cluster`,
				`service "web": build.secrets[2]: secret "gone" is not defined`,
				`service "web": build.secrets[3]: id "npm" is given twice`,
			},
		},
		{
			name: "container options",
			files: map[string]string{"compose.yaml": `services:
  web:
    image: busybox
    cap_add: [NET_ADMIN, SYS_MAGIC]
    sysctls: {vm.swappiness: "10"}
    ulimits: {open_files: 10, nofile: {soft: 20, hard: 10}}
    pids_limit: 10
    network_mode: none
    ipc: none
    security_opt: [apparmor=unconfined]
    deploy:
      resources:
        limits: {pids: 20}
`},
			want: []string{
				`compose.yaml:13: service "web": deploy.resources.limits.pids: 20 differs from pids_limit: 10; set only one of them`,
				`compose.yaml:4: service "web": cap_add[1]: unknown capability "SYS_MAGIC"`,
				`compose.yaml:5: service "web": sysctls.vm.swappiness: "vm.swappiness" is not a kernel parameter of the container's own namespaces`,
				`service "web": ulimits.nofile: the soft limit 20 is above the hard limit 10`,
				`service "web": ulimits.open_files: unknown limit "open_files"`,
				`compose.yaml:9: service "web": ipc: "none" is not supported`,
				`compose.yaml:8: service "web": network_mode: "none" is not supported`,
				`compose.yaml:10: service "web": security_opt[0]: "apparmor=unconfined" is not supported`,
			},
		},
		{
			name:  "service names differing in case",
			files: map[string]string{"compose.yaml": "services:\n  web:\n    image: busybox\n  Web:\n    image: busybox\n"},
			want:  []string{`compose.yaml:2: service "web": the name differs from service "Web" only in case`},
		},
	}
	for _, tt := range tests {
		if tt.count == 0 {
			tt.count = len(tt.want)
		}
		t.Run(tt.name, func(t *testing.T) {
			dir := writeProject(t, tt.files)
			p, err := loadDir(t, dir, Options{Environment: tt.env})
			if err == nil {
				t.Fatalf("Load() = %v, want an error", p)
			}
			msg := err.Error()
			last := 0
			for _, w := range tt.want {
				i := strings.Index(msg[last:], w)
				if i < 0 {
					t.Fatalf("Load() error:\n%s\nwant, in order: %q", msg, tt.want)
				}
				last += i + len(w)
			}
			var errs validation.Errors
			if !errors.As(err, &errs) || len(errs) != tt.count {
				t.Errorf("Load() gave %d problems:\n%s\nwant %d", len(errs), msg, tt.count)
			}
		})
	}
}
