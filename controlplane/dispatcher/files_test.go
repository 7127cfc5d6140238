package dispatcher

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/seal"
	"github.com/berthproject/berth/controlplane/store"
)

const secretData = "the-database-password"

// fileTask is task id on node, desired running (or not), naming secret
// "db" and config "conf" at the versions given (0: not at all).
func fileTask(id, node string, desired berthv1.TaskState, secretVersion, configVersion uint64) *berthv1.Task {
	t := task(id, node, berthv1.TaskState_TASK_STATE_ASSIGNED, 1, desired)
	t.Spec = &berthv1.ServiceSpec{Image: "web:1"}
	if secretVersion > 0 {
		t.Spec.Secrets = []*berthv1.FileReference{{Name: "db", Target: "db", Version: secretVersion}}
	}
	if configVersion > 0 {
		t.Spec.Configs = []*berthv1.FileReference{{Name: "conf", Target: "/conf", Version: configVersion}}
	}
	return t
}

// payloads names an assignment's payloads, "secret db@1", sorted.
func payloads(a *berthv1.Assignments) []string {
	var out []string
	for _, p := range a.GetFiles() {
		kind := "config"
		if p.Secret {
			kind = "secret"
		}
		out = append(out, fmt.Sprintf("%s %s@%d", kind, p.Name, p.Version))
	}
	slices.Sort(out)
	return out
}

func TestFilesGoOnlyWithTheTasksThatUseThem(t *testing.T) {
	ctx := context.Background()
	s, c := newStoreAndCache(t)
	kek, err := seal.New(bytes.Repeat([]byte{4}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := kek.Seal(seal.KindSecret, seal.SecretName("default", "db"), []byte(secretData))
	if err != nil {
		t.Fatal(err)
	}
	var txn store.Txn
	txn.Create(store.SecretKey("default", "db"), &berthv1.Secret{Meta: &berthv1.Meta{Id: "s"}, Namespace: "default", Name: "db", Version: 1, SealedData: sealed})
	txn.Create(store.ConfigKey("default", "conf"), &berthv1.Config{Meta: &berthv1.Meta{Id: "c"}, Namespace: "default", Name: "conf", Version: 1, Data: []byte("level=1")})
	rev, err := s.Commit(ctx, &txn)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	d := New(Config{Store: s, Cache: c, KEK: kek, Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	trackers := map[string]*fileTracker{}
	for _, n := range []string{"n1", "n2"} {
		d.sessions[n] = newSession(n, context.Background(), func() {})
		trackers[n] = newFileTracker()
	}
	// send takes a node's queued message as its send loop would.
	send := func(node string) *berthv1.Assignments {
		a := d.sessions[node].take()
		if a == nil {
			return nil
		}
		d.withFiles(trackers[node], a)
		return a
	}
	run, stop := berthv1.TaskState_TASK_STATE_RUNNING, berthv1.TaskState_TASK_STATE_SHUTDOWN
	put := func(tasks ...*berthv1.Task) {
		for _, tk := range tasks {
			d.route(store.Event{Kind: store.KindTask, Action: store.ActionPut, Object: tk})
		}
	}
	del := func(tk *berthv1.Task) {
		d.route(store.Event{Kind: store.KindTask, Action: store.ActionDelete, Object: tk, Old: tk})
	}

	steps := []struct {
		name   string
		change func()
		n1, n2 []string
	}{
		{"a task that uses them, and one that does not", func() { put(fileTask("a", "n1", run, 1, 1), fileTask("b", "n2", run, 0, 0)) },
			[]string{"config conf@1", "secret db@1"}, nil},
		{"another task on the node that holds them", func() { put(fileTask("c", "n1", run, 1, 0)) }, nil, nil},
		{"the versions move from two tasks to a new one", func() {
			del(fileTask("a", "n1", run, 1, 1))
			del(fileTask("c", "n1", run, 1, 0))
			put(fileTask("d", "n1", run, 1, 0))
		},
			nil, nil},
		{"the last task that names them stops", func() { put(fileTask("d", "n1", stop, 1, 0)) }, nil, nil},
		{"a new task needs them again", func() { put(fileTask("e", "n1", run, 1, 0)) }, []string{"secret db@1"}, nil},
		{"a version no longer stored", func() { put(fileTask("f", "n2", run, 2, 0)) }, nil, nil},
		{"a task that ended", func() {
			ended := fileTask("x", "n2", run, 1, 1)
			ended.Status.State = berthv1.TaskState_TASK_STATE_FAILED
			put(ended)
		}, nil, nil},
		{"the other node's first task that uses them", func() { put(fileTask("g", "n2", run, 1, 1)) }, nil, []string{"config conf@1", "secret db@1"}},
	}
	for _, st := range steps {
		st.change()
		for node, want := range map[string][]string{"n1": st.n1, "n2": st.n2} {
			a := send(node)
			if got := payloads(a); !slices.Equal(got, want) {
				t.Errorf("%s: %s was sent %v, want %v", st.name, node, got, want)
			}
			for _, p := range a.GetFiles() {
				if p.Secret && string(p.Data) != secretData {
					t.Errorf("%s: the secret's payload is %q, want it opened", st.name, p.Data)
				}
				if !p.Secret && string(p.Data) != "level=1" {
					t.Errorf("%s: the config's payload is %q", st.name, p.Data)
				}
			}
		}
	}

	// A full assignment (a new session, or a resync) sends every version
	// its tasks need again.
	d.sessions["n1"].queueFull([]*berthv1.Task{fileTask("e", "n1", run, 1, 0), fileTask("h", "n1", run, 0, 1)})
	if got, want := payloads(send("n1")), []string{"config conf@1", "secret db@1"}; !slices.Equal(got, want) {
		t.Errorf("full assignment sent %v, want %v", got, want)
	}
	if !bytes.Contains(logs.Bytes(), []byte("no longer stored")) {
		t.Errorf("the version no longer stored was not logged:\n%s", logs.String())
	}
	if bytes.Contains(logs.Bytes(), []byte(secretData)) {
		t.Errorf("the secret's data is in the log:\n%s", logs.String())
	}
}
