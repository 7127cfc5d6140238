package dispatcher

import (
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/controlplane/seal"
)

// fileID names one version of a secret or config.
type fileID struct {
	secret          bool
	namespace, name string
	version         uint64
}

// fileTracker is what one session's agent holds of the secrets and
// configs, as the server counts it: the versions named by the session's
// tasks (sent, not removed) that are desired running and had not ended
// when sent, each with how many such tasks name it. A version's data is
// sent with the first task that needs it while the count is zero. The
// agent's side of it: keep a version's data while any task of the
// session desired running names it (that is at least what is counted);
// drop it after, if it likes: it comes again with the next task that
// needs it. Only the session's send loop uses the tracker.
type fileTracker struct {
	tasks map[string][]fileID // task id -> the versions it names
	held  map[fileID]int
}

func newFileTracker() *fileTracker {
	return &fileTracker{tasks: map[string][]fileID{}, held: map[fileID]int{}}
}

// set records that task id names files (none: it is gone, or no longer
// desired running).
func (ft *fileTracker) set(id string, files []fileID) {
	for _, f := range files {
		ft.held[f]++
	}
	for _, f := range ft.tasks[id] {
		if ft.held[f]--; ft.held[f] <= 0 {
			delete(ft.held, f)
		}
	}
	if len(files) == 0 {
		delete(ft.tasks, id)
	} else {
		ft.tasks[id] = files
	}
}

// taskFiles are the versions of secrets and configs task t names while
// it is desired running and has not ended; none otherwise: a task that
// ended never starts again, so its data is not sent.
func taskFiles(t *berthv1.Task) []fileID {
	if t.GetDesiredState() != berthv1.TaskState_TASK_STATE_RUNNING || taskstate.Terminal(t.GetStatus().GetState()) {
		return nil
	}
	var out []fileID
	spec := t.GetSpec()
	for _, r := range spec.GetSecrets() {
		out = append(out, fileID{secret: true, namespace: t.GetNamespace(), name: r.GetName(), version: r.GetVersion()})
	}
	for _, r := range spec.GetConfigs() {
		out = append(out, fileID{namespace: t.GetNamespace(), name: r.GetName(), version: r.GetVersion()})
	}
	return out
}

// withFiles adds to a, just before it is sent, the data of the secrets
// and configs its tasks name that the agent does not hold (all of them
// after a full assignment, which replaces the agent's set). A version that
// is no longer stored (the secret changed since the task was made, or was
// removed) is not sent: the agent rejects the task, and the service's
// newer tasks name the stored version.
func (d *Dispatcher) withFiles(ft *fileTracker, a *berthv1.Assignments) {
	if a.Full {
		*ft = *newFileTracker()
	}
	sent := map[fileID]bool{}
	next := make(map[string][]fileID, len(a.Tasks))
	for _, t := range a.Tasks {
		var files []fileID
		for _, f := range taskFiles(t) {
			if ft.held[f] == 0 && !sent[f] {
				p := d.payload(t, f)
				if p == nil {
					continue
				}
				a.Files = append(a.Files, p)
				sent[f] = true
			}
			files = append(files, f)
		}
		next[t.GetMeta().GetId()] = files
	}
	// The new names count before the old ones are let go: a version that
	// moves from one task to another in one message stays held.
	for id, files := range next {
		ft.set(id, files)
	}
	for _, id := range a.Removed {
		ft.set(id, nil)
	}
}

// payload is the data of f, opened now, for task t; nil when it cannot be
// sent. It never logs the data.
func (d *Dispatcher) payload(t *berthv1.Task, f fileID) *berthv1.FilePayload {
	kind := "config"
	if f.secret {
		kind = "secret"
	}
	log := d.log.With("task", t.GetMeta().GetId(), "node", t.GetNodeId(), kind, f.namespace+"/"+f.name, "version", f.version)
	var (
		stored uint64
		data   []byte
		found  bool
	)
	if f.secret {
		sec, ok := d.cfg.Cache.Secret(f.namespace, f.name)
		if found = ok; ok {
			stored = sec.GetVersion()
		}
		if ok && stored == f.version {
			if d.cfg.KEK == nil {
				log.Error("a task names a secret, and this server has no key-encryption key to open it")
				return nil
			}
			plain, err := d.cfg.KEK.Open(seal.KindSecret, seal.SecretName(f.namespace, f.name), sec.GetSealedData())
			if err != nil {
				log.Error("a task's secret does not open; it is not sent", "err", err)
				return nil
			}
			data = plain
		}
	} else {
		cf, ok := d.cfg.Cache.Config(f.namespace, f.name)
		if found = ok; ok {
			stored, data = cf.GetVersion(), cf.GetData()
		}
	}
	switch {
	case !found:
		log.Warn("a task names a " + kind + " that is not stored; nothing sent, the agent rejects the task")
		return nil
	case stored != f.version:
		log.Warn("a task names a version of a "+kind+" that is no longer stored; nothing sent, the agent rejects the task", "stored", stored)
		return nil
	}
	return &berthv1.FilePayload{Secret: f.secret, Namespace: f.namespace, Name: f.name, Version: f.version, Data: data}
}
