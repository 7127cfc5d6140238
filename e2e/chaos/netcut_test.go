package chaos

import (
	"fmt"
	"testing"
	"time"
)

// testNodeCut takes a node's link to the control plane down for a while,
// then brings it back. The node keeps a direct link to the other node, so
// gossip still sees it alive: it is unreachable first, down only when the
// grace ends. None of its tasks is replaced before it is down, and 10 s
// after healing no slot runs twice (the returning agent stopped the tasks
// that were replaced).
func testNodeCut(t *testing.T) {
	cut := reps(15*time.Second, 60*time.Second)
	// The short form scales the verdict times down, so that the node goes
	// through unreachable to down within its shorter cut.
	args := reps([]string{"--node-down-grace", "5s", "--heartbeat-period", "500ms"}, nil)
	c := newCluster(t, "node-cut", clusterSpec{serverArgs: args})
	victim := c.addAgent("a1")
	c.peerLink(victim, c.addAgent("a2"))
	c.importImage()
	c.apply("main", sleepers(4))
	c.settle(time.Minute)
	all := c.tasks()
	first := liveTasks(all)
	onVictim := 0
	for id := range first {
		if all[id].Node == victim.name {
			onVictim++
		}
	}
	if onVictim == 0 {
		t.Fatalf("no task of main landed on %s: %v", victim.name, first)
	}

	must(t, "ip", "-n", c.hub, "link", "set", victim.hubEnd, "down")
	tally.add(c.class, counts{faults: 1})
	started := time.Now()
	early, down := 0, false
	for time.Since(started) < cut {
		tasks := c.tasks()
		// The status is read after the tasks: a replacement the tasks
		// show while the node is not yet down was made before it was.
		status := c.nodeStatus(victim)
		if status == "down" && !down {
			t.Logf("%s is down %s after the cut", victim.name, time.Since(started).Round(100*time.Millisecond))
			down = true
		}
		for id, tk := range tasks {
			if _, ok := first[id]; !ok && tk.DesiredState == "running" && !down {
				early++
				t.Errorf("task %s (%s) replaces a task of %s, which is %q, not down", id, tk.slot(), victim.name, status)
			}
		}
	}
	if !down {
		t.Errorf("after %s cut off, %s was never down", cut, victim.name)
	}
	must(t, "ip", "-n", c.hub, "link", "set", victim.hubEnd, "up")
	healed := time.Now()
	tally.add(c.class, counts{duplicates: early})

	// Ten seconds after healing, each slot runs once, in containerd too.
	var dups []string
	if why, ok := poll(10*time.Second, func() (bool, string) {
		tasks := c.tasks()
		dups = duplicateSlots(runningIDs(c.containers()), tasks)
		return len(dups) == 0, fmt.Sprint(dups)
	}); !ok {
		for _, d := range dups {
			t.Errorf("%s after healing: duplicate: %s", time.Since(healed).Round(time.Second), d)
		}
		tally.add(c.class, counts{duplicates: len(dups)})
		t.Logf("still duplicated: %s", why)
	}
	eventually(t, time.Minute, func() (bool, string) {
		s := c.nodeStatus(victim)
		return s == "ready", fmt.Sprintf("after healing, %s is %q", victim.name, s)
	})
	c.settle(time.Minute)
}
