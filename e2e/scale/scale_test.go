package scale

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"go.uber.org/goleak"
)

// berthBin is the binary the server runs: $BERTH_BIN, or one TestMain
// builds.
var berthBin string

func TestMain(m *testing.M) {
	MaybeRunPool()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	berthBin = os.Getenv("BERTH_BIN")
	if berthBin == "" {
		dir, err := os.MkdirTemp("", "berth-scale-bin-")
		if err != nil {
			fmt.Println("scale:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		berthBin = filepath.Join(dir, "berth")
		build := exec.Command("go", "build", "-o", berthBin, "./cmd/berth")
		build.Dir = filepath.Join("..", "..")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Printf("scale: building berth: %v\n%s", err, out)
			return 1
		}
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Println("scale: leaked goroutines:", err)
			return 1
		}
	}
	return code
}

// TestScaleSmall runs 50 simulated nodes and 2,000 tasks: every task runs
// once, over every node; killing a pool of 10 nodes makes them down and
// their tasks run again on the others.
func TestScaleSmall(t *testing.T) {
	const nodes, tasks, victims = 50, 2000, 10
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var progress strings.Builder
	c, err := Start(ctx, Config{
		Bin: berthBin, Nodes: nodes, Tasks: tasks, Services: 4, Pools: 2, Victims: victims,
		RunningTimeout: 2 * time.Minute, Progress: &progress, Keep: true,
		// Fifty agents share two cores with the server here, and starve
		// each other during the apply (more so under -race): with the
		// default gossip timings (probe every 200 ms, answer within
		// 100 ms) live nodes get declared down, which is not what this
		// test is about. The benchmark (berth-scale) keeps the defaults
		// and shows it.
		ServerArgs: []string{"--gossip-probe-interval", "1s", "--gossip-probe-timeout", "1s", "--gossip-suspicion-mult", "6"},
	})
	if err != nil {
		t.Fatalf("starting %d nodes: %v", nodes, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("progress:\n%s", progress.String())
		}
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		// The server's and pools' logs stay for a failed run.
		if t.Failed() {
			t.Logf("logs kept in %s", c.Dir())
		} else if err := os.RemoveAll(c.Dir()); err != nil {
			t.Errorf("removing the run's directory: %v", err)
		}
	})
	all, dead := c.Nodes()
	if len(all) != nodes || len(dead) != victims {
		t.Fatalf("%d nodes, %d of them victims; want %d and %d", len(all), len(dead), nodes, victims)
	}

	if err := c.PrePull(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitRunning(ctx, tasks); err != nil {
		t.Fatal(err)
	}
	perNode := checkRunning(t, ctx, c.API(), tasks, nil)
	if len(perNode) != nodes {
		t.Errorf("tasks run on %d nodes, want all %d: %v", len(perNode), nodes, perNode)
	}

	d, err := c.KillVictims(ctx, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Down) != victims || len(d.Unreachable) != victims {
		t.Errorf("detection saw %d unreachable and %d down, want %d each", len(d.Unreachable), len(d.Down), victims)
	}
	list, err := c.API().ListNodes(ctx, &berthv1.ListNodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range list.GetNodes() {
		want := berthv1.NodeStatus_NODE_STATUS_READY
		if _, ok := dead[n.GetMeta().GetId()]; ok {
			want = berthv1.NodeStatus_NODE_STATUS_DOWN
		}
		if n.GetStatus() != want {
			t.Errorf("node %s is %s, want %s", n.GetName(), n.GetStatus(), want)
		}
	}
	perNode = checkRunning(t, ctx, c.API(), tasks, dead)
	if len(perNode) != nodes-victims {
		t.Errorf("after the kill tasks run on %d nodes, want the %d live ones", len(perNode), nodes-victims)
		explainIdle(t, ctx, c.API(), all, dead, perNode)
	}
}

// explainIdle logs what became of the tasks of live nodes that run none.
func explainIdle(t *testing.T, ctx context.Context, api berthv1.ClusterServiceClient, all, dead map[string]string, perNode map[string]int) {
	t.Helper()
	for id, name := range all {
		if _, ok := dead[id]; ok || perNode[id] > 0 {
			continue
		}
		resp, err := api.ListTasks(ctx, &berthv1.ListTasksRequest{App: App, NodeId: id, All: true})
		if err != nil {
			t.Errorf("tasks of node %s: %v", name, err)
			continue
		}
		states := map[string]int{}
		for _, tk := range resp.GetTasks() {
			st := tk.GetStatus()
			states[fmt.Sprintf("%s desired %s: %s %s", st.GetState(), tk.GetDesiredState(), st.GetMessage(), st.GetErr())]++
		}
		t.Logf("live node %s (%s) runs nothing; its tasks: %v", name, id, states)
	}
}

// checkRunning lists the app's tasks and checks that want of them run,
// each slot of each service once, none on the nodes in dead. It returns
// how many run on each node.
func checkRunning(t *testing.T, ctx context.Context, api berthv1.ClusterServiceClient, want int, dead map[string]string) map[string]int {
	t.Helper()
	resp, err := api.ListTasks(ctx, &berthv1.ListTasksRequest{App: App})
	if err != nil {
		t.Fatalf("listing tasks: %v", err)
	}
	slots := map[string]string{} // service/slot → task id
	perNode := map[string]int{}
	for _, tk := range resp.GetTasks() {
		if tk.GetStatus().GetState() != berthv1.TaskState_TASK_STATE_RUNNING {
			continue
		}
		slot := fmt.Sprintf("%s/%d", tk.GetService(), tk.GetSlot())
		if other, ok := slots[slot]; ok {
			t.Errorf("slot %s runs twice: tasks %s and %s", slot, other, tk.GetMeta().GetId())
		}
		slots[slot] = tk.GetMeta().GetId()
		if name, ok := dead[tk.GetNodeId()]; ok {
			t.Errorf("task %s (slot %s) runs on killed node %s", tk.GetMeta().GetId(), slot, name)
		}
		perNode[tk.GetNodeId()]++
	}
	if len(slots) != want {
		t.Errorf("%d tasks running, want %d", len(slots), want)
	}
	return perNode
}
