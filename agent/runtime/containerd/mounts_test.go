package containerd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/berthproject/berth/agent/files"
	"github.com/berthproject/berth/agent/runtime"
	"github.com/berthproject/berth/agent/volume"
	"github.com/berthproject/berth/internal/testimage"
)

// runScript runs sh -c script in a new container of spec (its ID, image
// and command set here) and returns its output lines and exit code.
func runScript(t *testing.T, env *testEnv, id string, spec runtime.ContainerSpec, script string) ([]string, int32) {
	t.Helper()
	spec.ID, spec.Image, spec.Command = id, busyboxRef, []string{"sh", "-c", script}
	code := runToExit(t, env.rt, spec)
	return logText(t, env.rt, id, -1), code
}

func TestContainerdVolumeOutlivesContainers(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()
	ref := volume.Ref{Namespace: "team", Name: "db-data.1"}
	spec := runtime.ContainerSpec{Namespace: "team", Mounts: []runtime.Mount{{Type: runtime.MountVolume, Source: "db-data.1", Target: "/data"}}}

	if out, code := runScript(t, env, "writer", spec, "echo kept > /data/row"); code != 0 {
		t.Fatalf("writer exited %d: %q", code, out)
	}
	if err := env.rt.cfg.Volumes.Remove(ref); !errors.Is(err, volume.ErrInUse) {
		t.Errorf("Remove of a volume a container uses = %v, want ErrInUse", err)
	}
	// A runtime started later (the agent restarted) knows the volume is
	// used, from the container's label.
	later := env.open(t, testOwner, nil)
	if users := later.cfg.Volumes.Users(ref); !slices.Equal(users, []string{"writer"}) {
		t.Errorf("after a restart the volume's users are %v, want [writer]", users)
	}
	if err := env.rt.Remove(ctx, "writer"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if out, code := runScript(t, env, "reader", spec, "cat /data/row"); code != 0 || !slices.Equal(out, []string{"kept"}) {
		t.Errorf("a new container on the volume read %q (exit %d), want kept", out, code)
	}
	if err := env.rt.Remove(ctx, "reader"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if err := env.rt.cfg.Volumes.Remove(ref); err != nil {
		t.Errorf("Remove of a volume no container uses: %v", err)
	}
}

func TestContainerdVolumeCopyUp(t *testing.T) {
	env := newTestEnv(t, nil)
	tests := []struct {
		name  string
		mount runtime.Mount
		want  []string
	}{
		{"named volume gets the image's files", runtime.Mount{Type: runtime.MountVolume, Source: "www.1", Target: "/www"}, []string{strings.TrimSpace(testimage.IndexHTML)}},
		{"nocopy stays empty", runtime.Mount{Type: runtime.MountVolume, Source: "www.2", Target: "/www", NoCopy: true}, []string{"empty"}},
		{"scratch volume gets the image's files", runtime.Mount{Type: runtime.MountVolume, Target: "/www"}, []string{strings.TrimSpace(testimage.IndexHTML)}},
		{"nothing there in the image", runtime.Mount{Type: runtime.MountVolume, Source: "new.1", Target: "/new/dir"}, []string{"empty"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := runtime.ContainerSpec{Namespace: "team", Mounts: []runtime.Mount{tc.mount}}
			dir := tc.mount.Target
			out, code := runScript(t, env, "copyup-"+string(rune('a'+i)), spec, "cat "+dir+"/index.html 2>/dev/null || echo empty")
			if code != 0 || !slices.Equal(out, tc.want) {
				t.Errorf("output %q (exit %d), want %q", out, code, tc.want)
			}
		})
	}
}

func TestContainerdScratchVolumeGoesWithContainer(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()
	spec := runtime.ContainerSpec{Mounts: []runtime.Mount{{Type: runtime.MountVolume, Target: "/scratch", NoCopy: true}}}
	if out, code := runScript(t, env, "scratch", spec, "echo x > /scratch/f && cat /scratch/f"); code != 0 || !slices.Equal(out, []string{"x"}) {
		t.Fatalf("output %q (exit %d)", out, code)
	}
	dir := filepath.Join(env.stateDir, "containers", "scratch")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("scratch volume dir: %v", err)
	}
	if err := env.rt.Remove(ctx, "scratch"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("scratch volume after Remove: %v, want gone", err)
	}
}

func TestContainerdSubpathAndMounts(t *testing.T) {
	env := newTestEnv(t, nil)
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "hello.txt"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := runtime.ContainerSpec{Namespace: "team", Mounts: []runtime.Mount{
		{Type: runtime.MountVolume, Source: "shared.1", Target: "/db", Subpath: "pg/main", NoCopy: true},
		{Type: runtime.MountBind, Source: host, Target: "/host", ReadOnly: true},
		{Type: runtime.MountTmpfs, Target: "/cache", TmpfsSize: 1 << 20, TmpfsMode: 0o700},
	}}
	script := `echo row > /db/f
cat /host/hello.txt
touch /host/new 2>/dev/null && echo host-writable || echo host-read-only
grep ' /cache ' /proc/mounts | grep -o 'size=[0-9a-z]*'
stat -c %a /cache`
	out, code := runScript(t, env, "mounts", spec, script)
	want := []string{"from the host", "host-read-only", "size=1024k", "700"}
	if code != 0 || !slices.Equal(out, want) {
		t.Errorf("output %q (exit %d), want %q", out, code, want)
	}
	data, err := env.rt.cfg.Volumes.Path(volume.Ref{Namespace: "team", Name: "shared.1"})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(data, "pg", "main", "f")); err != nil || string(b) != "row\n" {
		t.Errorf("the subpath's file on the node: %q, %v; want row", b, err)
	}

	// A subpath that leaves the volume makes no container.
	bad := runtime.ContainerSpec{ID: "escape", Image: busyboxRef, Namespace: "team",
		Mounts: []runtime.Mount{{Type: runtime.MountVolume, Source: "shared.1", Target: "/db", Subpath: "../../../etc"}}}
	if err := env.rt.Create(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "..") {
		t.Errorf("Create with subpath ../../../etc = %v, want a refusal", err)
	}
	if users := env.rt.cfg.Volumes.Users(volume.Ref{Namespace: "team", Name: "shared.1"}); slices.Contains(users, "escape") {
		t.Errorf("a refused container still marks the volume used: %v", users)
	}
}

func TestContainerdSecretAndConfigFiles(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()
	spec := runtime.ContainerSpec{Files: []files.File{
		{Target: "/run/secrets/db_password", Data: []byte("hunter2"), Mode: 0o444, Secret: true, Name: "db_password"},
		{Target: "/etc/api.key", Data: []byte("k3y"), UID: 1000, GID: 1000, Mode: 0o400, Secret: true, Name: "api_key"},
		{Target: "/etc/app.conf", Data: []byte("max=10\n"), Mode: 0o444, Name: "settings"},
	}}
	script := `cat /run/secrets/db_password; echo
stat -c '%a %u %g' /run/secrets/db_password /etc/api.key
cat /etc/api.key; echo
cat /etc/app.conf
(echo changed > /run/secrets/db_password) 2>/dev/null && echo secret-writable || echo secret-read-only`
	out, code := runScript(t, env, "files", spec, script)
	want := []string{"hunter2", "444 0 0", "400 1000 1000", "k3y", "max=10", "secret-read-only"}
	if code != 0 || !slices.Equal(out, want) {
		t.Errorf("output %q (exit %d), want %q", out, code, want)
	}
	dir := env.rt.cfg.Files.Dir("files")
	if !strings.HasPrefix(dir, env.filesRoot) {
		t.Errorf("files dir %s is not under the files root %s", dir, env.filesRoot)
	}
	if err := env.rt.Remove(ctx, "files"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("files dir after Remove: %v, want gone", err)
	}
}

func TestContainerdSecurityDefaults(t *testing.T) {
	env := newTestEnv(t, nil)
	tests := []struct {
		name    string
		options runtime.ContainerOptions
		script  string
		want    []string
	}{
		{
			"hardened by default",
			runtime.ContainerOptions{},
			`grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\t'`,
			[]string{"CapEff:00000000a80405fb", "NoNewPrivs:1", "Seccomp:2"},
		},
		{
			"cap_add NET_RAW, cap_drop CHOWN",
			runtime.ContainerOptions{CapAdd: []string{"NET_RAW"}, CapDrop: []string{"CAP_CHOWN"}},
			`grep '^CapEff:' /proc/self/status | tr -d '\t'`,
			[]string{"CapEff:00000000a80425fa"},
		},
		{
			"no-new-privileges off, seccomp unconfined",
			runtime.ContainerOptions{SecurityOpt: []string{"no-new-privileges:false", "seccomp=unconfined"}},
			`grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\t'`,
			[]string{"NoNewPrivs:0", "Seccomp:0"},
		},
		{
			"read-only root file system",
			runtime.ContainerOptions{ReadOnly: true},
			`touch /new 2>/dev/null && echo writable || echo read-only`,
			[]string{"read-only"},
		},
		{
			"init is PID 1",
			runtime.ContainerOptions{Init: true},
			`cat /proc/1/comm; [ $$ -ne 1 ] && echo command-is-its-child`,
			[]string{"berth-init", "command-is-its-child"},
		},
		{
			"privileged",
			runtime.ContainerOptions{Privileged: true},
			`grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\t'`,
			[]string{"NoNewPrivs:0", "Seccomp:0"},
		},
		{
			"a device under another name, the host's pid namespace",
			runtime.ContainerOptions{Devices: []string{"/dev/null:/dev/mynull:rw"}, PID: "host"},
			`echo x > /dev/mynull && echo device-ok; [ $$ -ne 1 ] && echo host-pids`,
			[]string{"device-ok", "host-pids"},
		},
		{
			"ulimits, groups, shm and sysctls",
			runtime.ContainerOptions{
				Ulimits:  []runtime.Ulimit{{Name: "nofile", Soft: 2048, Hard: 4096}},
				GroupAdd: []string{"nogroup", "1234"},
				ShmSize:  8 << 20,
				Sysctls:  map[string]string{"kernel.shmmni": "1000"},
			},
			`ulimit -n; ulimit -Hn; id -G; grep ' /dev/shm ' /proc/mounts | grep -o 'size=[0-9a-z]*'; cat /proc/sys/kernel/shmmni`,
			[]string{"2048", "4096", "0 1234 65534", "size=8192k", "1000"},
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runScript(t, env, "security-"+string(rune('a'+i)), runtime.ContainerSpec{Options: tc.options}, tc.script)
			if code != 0 || !slices.Equal(out, tc.want) {
				t.Errorf("output %q (exit %d), want %q", out, code, tc.want)
			}
		})
	}
}

func TestContainerdPidsLimit(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()
	tests := []struct {
		name  string
		limit int64
		want  int64 // 0: no limit in the spec
	}{
		{"default", 0, DefaultPidsLimit},
		{"asked", 64, 64},
		{"unlimited", -1, 0},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := "pids-" + string(rune('a'+i))
			if err := env.rt.Create(ctx, runtime.ContainerSpec{ID: id, Image: busyboxRef, Command: []string{"sleep", "60"}, Options: runtime.ContainerOptions{PidsLimit: tc.limit}}); err != nil {
				t.Fatalf("Create: %v", err)
			}
			if _, err := env.rt.Start(ctx, id); err != nil {
				t.Fatalf("Start: %v", err)
			}
			cont, err := env.rt.Client().LoadContainer(env.rt.ctx(ctx), id)
			if err != nil {
				t.Fatal(err)
			}
			spec, err := cont.Spec(env.rt.ctx(ctx))
			if err != nil {
				t.Fatal(err)
			}
			var got int64
			if p := spec.Linux.Resources.Pids; p != nil && p.Limit != nil {
				got = *p.Limit
			}
			if got != tc.want {
				t.Errorf("spec pids limit = %d, want %d", got, tc.want)
			}
			if tc.want == 0 {
				return
			}
			// What the kernel enforces, from the host's cgroup v1 tree.
			b, err := os.ReadFile("/sys/fs/cgroup/pids" + spec.Linux.CgroupsPath + "/pids.max")
			if errors.Is(err, os.ErrNotExist) {
				t.Logf("no pids cgroup v1 file; checked the spec only")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(b)); got != strconv.FormatInt(tc.want, 10) {
				t.Errorf("pids.max = %s, want %d", got, tc.want)
			}
		})
	}
}

func TestContainerdRefusesBadOptions(t *testing.T) {
	env := newTestEnv(t, nil)
	tests := []struct {
		name string
		spec runtime.ContainerSpec
		want string
	}{
		{"unknown capability", runtime.ContainerSpec{Options: runtime.ContainerOptions{CapAdd: []string{"FLY"}}}, "CAP_FLY"},
		{"unknown ulimit", runtime.ContainerSpec{Options: runtime.ContainerOptions{Ulimits: []runtime.Ulimit{{Name: "wings", Soft: 1}}}}, "ulimit"},
		{"bad security_opt", runtime.ContainerSpec{Options: runtime.ContainerOptions{SecurityOpt: []string{"apparmor=x"}}}, "security_opt"},
		{"relative target", runtime.ContainerSpec{Mounts: []runtime.Mount{{Type: runtime.MountTmpfs, Target: "data"}}}, "absolute"},
		{"missing bind source", runtime.ContainerSpec{Mounts: []runtime.Mount{{Type: runtime.MountBind, Source: "/nonexistent/berth", Target: "/x"}}}, "/nonexistent/berth"},
		{"bad volume name", runtime.ContainerSpec{Namespace: "team", Mounts: []runtime.Mount{{Type: runtime.MountVolume, Source: "../x", Target: "/x"}}}, "volume name"},
		{"network mode", runtime.ContainerSpec{Options: runtime.ContainerOptions{NetworkMode: "bridge"}}, "network_mode"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			spec.ID, spec.Image = "bad-"+string(rune('a'+i)), busyboxRef
			err := env.rt.Create(context.Background(), spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Create = %v, want an error with %q", err, tc.want)
			}
			if _, err := env.rt.Inspect(context.Background(), spec.ID); !errors.Is(err, runtime.ErrNotFound) {
				t.Errorf("a refused container exists: %v", err)
			}
		})
	}
}
