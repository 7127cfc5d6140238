package worker

import (
	"github.com/berthproject/berth/agent/files"
	"github.com/berthproject/berth/agent/runtime"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	apivolume "github.com/berthproject/berth/api/volume"
)

// FileSource gives the data of a task's secrets and configs: the agent's
// files.Payloads, fed by the assignments.
type FileSource interface {
	// Files returns the files of t's secrets and configs; an error
	// wrapping files.ErrNotDelivered when this node lacks a version.
	Files(t *berthv1.Task) ([]files.File, error)
}

// SetFiles gives the worker where the data of its tasks' secrets and
// configs comes from; call it before Start. Without it a task that uses a
// secret or config is rejected.
func (w *Worker) SetFiles(f FileSource) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.files = f
}

// SetNodeName tells the worker the node's name, which names the volumes
// of global services' tasks (one per node); call it before Start.
func (w *Worker) SetNodeName(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nodeName = name
}

// addStorage fills the namespace, mounts, files and options of cs from
// task. It fails (and the task is rejected) when the node was not sent the
// data of one of its secrets or configs.
func (w *Worker) addStorage(cs *runtime.ContainerSpec, task *berthv1.Task) error {
	w.mu.Lock()
	src, node := w.files, w.nodeName
	w.mu.Unlock()
	spec := task.GetSpec()
	cs.Namespace = task.GetNamespace()
	cs.Mounts = mounts(spec.GetMounts(), task.GetSlot(), node)
	if len(spec.GetSecrets())+len(spec.GetConfigs()) > 0 {
		if src == nil {
			src = files.NewPayloads() // holds nothing: says what is missing
		}
		fl, err := src.Files(task)
		if err != nil {
			return err
		}
		cs.Files = fl
	}
	cs.Options = containerOptions(spec.GetContainer())
	return nil
}

// mounts turns a spec's mounts into the runtime's: a named volume's
// source becomes the volume of the task's slot (or node, for a global
// service).
func mounts(ms []*berthv1.Mount, slot uint64, nodeName string) []runtime.Mount {
	out := make([]runtime.Mount, 0, len(ms))
	for _, m := range ms {
		rm := runtime.Mount{
			Source: m.GetSource(), Target: m.GetTarget(), ReadOnly: m.GetReadOnly(),
			NoCopy: m.GetNoCopy(), Subpath: m.GetSubpath(),
			TmpfsSize: m.GetTmpfsSize(), TmpfsMode: m.GetTmpfsMode(),
		}
		switch m.GetType() {
		case berthv1.MountType_MOUNT_TYPE_BIND:
			rm.Type = runtime.MountBind
		case berthv1.MountType_MOUNT_TYPE_TMPFS:
			rm.Type, rm.Source = runtime.MountTmpfs, ""
		default:
			rm.Type = runtime.MountVolume
			if apivolume.IsNamed(m) {
				rm.Source = apivolume.Name(rm.Source, slot, nodeName)
			}
		}
		out = append(out, rm)
	}
	return out
}

// containerOptions turns a spec's container options into the runtime's.
func containerOptions(o *berthv1.ContainerOptions) runtime.ContainerOptions {
	if o == nil {
		return runtime.ContainerOptions{}
	}
	out := runtime.ContainerOptions{
		Init: o.GetInit(), CapAdd: o.GetCapAdd(), CapDrop: o.GetCapDrop(),
		Sysctls: o.GetSysctls(), ReadOnly: o.GetReadOnly(), GroupAdd: o.GetGroupAdd(),
		PidsLimit: o.GetPidsLimit(), ShmSize: o.GetShmSize(), Privileged: o.GetPrivileged(),
		Devices: o.GetDevices(), PID: o.GetPid(), IPC: o.GetIpc(), NetworkMode: o.GetNetworkMode(),
		SecurityOpt: o.GetSecurityOpt(),
	}
	for _, u := range o.GetUlimits() {
		out.Ulimits = append(out.Ulimits, runtime.Ulimit{Name: u.GetName(), Soft: u.GetSoft(), Hard: u.GetHard()})
	}
	return out
}

// containerSpec is the runtime's view of a task, with its volumes, files
// and options.
func (w *Worker) containerSpec(id string, task *berthv1.Task) (runtime.ContainerSpec, error) {
	cs := containerSpec(id, task)
	if err := w.addStorage(&cs, task); err != nil {
		return runtime.ContainerSpec{}, err
	}
	return cs, nil
}
