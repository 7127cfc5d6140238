package worker

import (
	"slices"
	"strings"
	"testing"

	"github.com/berthproject/berth/agent/files"
	"github.com/berthproject/berth/agent/runtime"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestContainerSpecCarriesStorageAndOptions(t *testing.T) {
	h := newHarness(t, newRecordingRuntime())
	payloads := files.NewPayloads()
	h.w.SetFiles(payloads)
	h.w.SetNodeName("n1")

	tk := newTask("t1")
	tk.Namespace, tk.Slot = "team", 2
	tk.Spec.Mounts = []*berthv1.Mount{
		{Source: "db_data", Target: "/data", Subpath: "pg", NoCopy: true},
		{Type: berthv1.MountType_MOUNT_TYPE_VOLUME, Target: "/scratch"},
		{Type: berthv1.MountType_MOUNT_TYPE_BIND, Source: "/srv/x", Target: "/x", ReadOnly: true},
		{Type: berthv1.MountType_MOUNT_TYPE_TMPFS, Target: "/tmp", TmpfsSize: 1 << 20, TmpfsMode: 0o700},
	}
	tk.Spec.Secrets = []*berthv1.FileReference{{Name: "app_pw", Target: "pw", Version: 3, Mode: 0o400, Uid: 70}}
	tk.Spec.Configs = []*berthv1.FileReference{{Name: "app_conf", Target: "/etc/app.conf", Version: 1}}
	tk.Spec.Container = &berthv1.ContainerOptions{
		Init: true, CapAdd: []string{"NET_ADMIN"}, Ulimits: []*berthv1.Ulimit{{Name: "nofile", Soft: 10, Hard: 20}},
		ReadOnly: true, PidsLimit: -1, Sysctls: map[string]string{"net.core.somaxconn": "1024"},
	}
	tk.Spec.Ports = append(tk.Spec.Ports, &berthv1.PortSpec{Target: 90, Published: 6005, PublishedEnd: 6015, Protocol: "tcp", Mode: berthv1.PublishMode_PUBLISH_MODE_HOST})
	tk.HostPorts = []*berthv1.PortBinding{{Target: 90, Published: 6007, Protocol: "tcp"}}
	as := &berthv1.Assignments{Tasks: []*berthv1.Task{tk}, Files: []*berthv1.FilePayload{
		{Secret: true, Namespace: "team", Name: "app_pw", Version: 3, Data: []byte("pw")},
		{Namespace: "team", Name: "app_conf", Version: 1, Data: []byte("conf")},
	}}
	payloads.Apply(as)
	h.w.Assign(as)
	h.expect("t1", accepted, preparing, starting, running)

	cs, ok := h.rt.Spec("t1")
	if !ok {
		t.Fatal("no container t1")
	}
	wantMounts := []runtime.Mount{
		{Type: runtime.MountVolume, Source: "db_data.2", Target: "/data", Subpath: "pg", NoCopy: true},
		{Type: runtime.MountVolume, Target: "/scratch"},
		{Type: runtime.MountBind, Source: "/srv/x", Target: "/x", ReadOnly: true},
		{Type: runtime.MountTmpfs, Target: "/tmp", TmpfsSize: 1 << 20, TmpfsMode: 0o700},
	}
	if cs.Namespace != "team" || !slices.Equal(cs.Mounts, wantMounts) {
		t.Errorf("namespace %q, mounts %+v; want team, %+v", cs.Namespace, cs.Mounts, wantMounts)
	}
	if len(cs.Files) != 2 || cs.Files[0].Target != "/run/secrets/pw" || string(cs.Files[0].Data) != "pw" || cs.Files[0].Mode != 0o400 || cs.Files[0].UID != 70 ||
		cs.Files[1].Target != "/etc/app.conf" || string(cs.Files[1].Data) != "conf" || cs.Files[1].Mode != 0o444 {
		t.Errorf("files = %v", cs.Files)
	}
	o := cs.Options
	if !o.Init || !slices.Equal(o.CapAdd, []string{"NET_ADMIN"}) || !o.ReadOnly || o.PidsLimit != -1 || o.Sysctls["net.core.somaxconn"] != "1024" ||
		!slices.Equal(o.Ulimits, []runtime.Ulimit{{Name: "nofile", Soft: 10, Hard: 20}}) {
		t.Errorf("options = %+v", o)
	}
	if !slices.Contains(cs.Ports, runtime.Port{Target: 90, Published: 6007, Protocol: "tcp"}) {
		t.Errorf("ports = %+v, want 90 on the task's host port 6007", cs.Ports)
	}
}

func TestGlobalTaskVolumeIsTheNodes(t *testing.T) {
	got := mounts([]*berthv1.Mount{{Source: "logs", Target: "/logs"}}, 0, "n1")
	if len(got) != 1 || got[0].Source != "logs.n1" {
		t.Errorf("mounts = %+v, want volume logs.n1", got)
	}
}

func TestUndeliveredSecretRejectsTheTask(t *testing.T) {
	tests := []struct {
		name string
		set  func(*berthv1.Task)
		want string
	}{
		{"secret", func(tk *berthv1.Task) {
			tk.Spec.Secrets = []*berthv1.FileReference{{Name: "pw", Version: 2}}
		}, "secret pw version 2 was not delivered to this node"},
		{"config", func(tk *berthv1.Task) {
			tk.Spec.Configs = []*berthv1.FileReference{{Name: "conf", Version: 5}}
		}, "config conf version 5 was not delivered to this node"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, newRecordingRuntime())
			h.w.SetFiles(files.NewPayloads())
			tk := newTask("t1")
			tc.set(tk)
			h.w.Assign(&berthv1.Assignments{Tasks: []*berthv1.Task{tk}})
			st := h.expect("t1", accepted, preparing, rejected)
			if !strings.Contains(st.Err, tc.want) {
				t.Errorf("rejection %q, want %q", st.Err, tc.want)
			}
			if n := h.rt.createCount(); n != 0 {
				t.Errorf("%d containers created, want none", n)
			}
		})
	}
}
