package chaos

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestChaos runs each fault class against a cluster of its own.
func TestChaos(t *testing.T) {
	needRoot(t)
	t.Run("server-kill", testServerKill)
	t.Run("agent-kill", testAgentKill)
	t.Run("node-cut", testNodeCut)
	t.Run("etcd-member-kill", testEtcdMemberKill)
	t.Run("disk-full", testDiskFull)
	t.Run("containerd-unavailable", testContainerdUnavailable)
}

// churn applies, scales, rolls out and deletes apps one call after the
// other until stopped, recording every write and whether the cluster
// acknowledged it.
type churn struct {
	c    *cluster
	rng  *rand.Rand
	mu   sync.Mutex
	log  []write
	ops  int
	apps []string // created apps not deleted since, oldest first
}

// step makes one change: a new app, a scale, a rollout of "main" (its
// spec changes), or, past six apps, a delete of the oldest.
func (ch *churn) step(i int) {
	c := ch.c
	var key, value string
	var err error
	switch {
	case len(ch.apps) > 6:
		app := ch.apps[0]
		ch.apps = ch.apps[1:]
		key, value = app+"/web", ""
		_, err = c.berth("delete", app)
	case i%3 == 0:
		app := fmt.Sprintf("app%d", i)
		ch.apps = append(ch.apps, app)
		key, value = app+"/web", "1"
		err = ch.apply(app, sleepers(1))
	case i%3 == 1 && len(ch.apps) > 0:
		app := ch.apps[ch.rng.IntN(len(ch.apps))]
		n := 1 + ch.rng.IntN(3)
		key, value = app+"/web", strconv.Itoa(n)
		_, err = c.berth("scale", fmt.Sprintf("%s/web=%d", app, n))
	default:
		// A rollout: the command changes, so every task of main is
		// replaced one by one.
		key, value = "main/web", "3"
		compose := strings.Replace(sleepers(3), `"3600"`, strconv.Quote(strconv.Itoa(3600+i)), 1)
		err = ch.apply("main", compose)
	}
	ch.mu.Lock()
	ch.log = append(ch.log, write{Key: key, Value: value, Acked: err == nil})
	ch.ops++
	ch.mu.Unlock()
}

// apply applies compose as app. It runs beside the test's goroutine, so
// it reports errors rather than failing the test.
func (ch *churn) apply(app, compose string) error {
	path := filepath.Join(ch.c.dir, app+".yaml")
	if err := os.WriteFile(path, []byte(compose), 0o644); err != nil {
		return err
	}
	_, err := ch.c.berth("apply", "-p", app, "-f", path)
	return err
}

func (ch *churn) count() int {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.ops
}

// leaderAmong waits until one of the running servers leads.
func (c *cluster) leaderAmong(timeout time.Duration) string {
	c.t.Helper()
	var leader string
	eventually(c.t, timeout, func() (bool, string) {
		out, err := c.berth("get", "servers", "-o", "json")
		if err != nil {
			return false, err.Error()
		}
		var rows []struct {
			Address string
			Leader  bool
		}
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			return false, err.Error()
		}
		for _, r := range rows {
			for i, s := range c.servers {
				if r.Leader && s.running() && r.Address == c.serverAddrs()[i] {
					leader = r.Address
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("no running server leads: %s", out)
	})
	return leader
}

// testServerKill kills a random one of three servers, SIGKILL, again and
// again while apps are applied, scaled, rolled out and deleted, and
// starts it again. Afterwards every acknowledged write holds, no slot ran
// twice and nothing is left without an owner.
func testServerKill(t *testing.T) {
	kills := reps(3, 20)
	c := newCluster(t, "server-kill", clusterSpec{servers: 3})
	c.addAgent("a1")
	c.addAgent("a2")
	c.importImage()
	c.apply("main", sleepers(3))

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	// One generator for the churn's goroutine, one for the victims.
	ch := &churn{c: c, rng: rand.New(rand.NewPCG(seed, 1))}
	pick := rand.New(rand.NewPCG(seed, 2))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ch.step(i)
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	}()
	for k := range kills {
		// Some writes between kills, so each kill lands mid-churn.
		at := ch.count()
		eventually(t, 2*time.Minute, func() (bool, string) {
			return ch.count() >= at+2, "the churn made no progress"
		})
		victim := pick.IntN(len(c.servers))
		c.servers[victim].kill()
		tally.add(c.class, counts{faults: 1})
		leader := c.leaderAmong(30 * time.Second)
		t.Logf("kill %d: server %d killed; %s leads", k+1, victim, leader)
		// Mid-churn, no slot may run twice either.
		tasks := c.tasks()
		dups := duplicateSlots(slices.Collect(maps.Keys(liveTasks(tasks))), tasks)
		for _, d := range dups {
			t.Errorf("after kill %d: duplicate: %s", k+1, d)
		}
		tally.add(c.class, counts{duplicates: len(dups)})
		c.servers[victim].start()
		c.servers[victim].waitOutput("Join a node with:", 90*time.Second)
	}
	close(stop)
	<-done

	c.settle(reps(3*time.Minute, 6*time.Minute))
	final := c.services()
	lost := lostWrites(ch.log, final)
	for _, l := range lost {
		t.Errorf("lost write: %s", l)
	}
	acked := 0
	for _, w := range ch.log {
		if w.Acked {
			acked++
		}
	}
	t.Logf("%d writes, %d acknowledged, %d lost", len(ch.log), acked, len(lost))
	tally.add(c.class, counts{lost: len(lost)})
}

// testEtcdMemberKill kills one member of the three-member etcd: the
// cluster keeps taking writes and running tasks, and the member, started
// again, rejoins and serves.
func testEtcdMemberKill(t *testing.T) {
	c := newCluster(t, "etcd-member-kill", clusterSpec{servers: 2})
	c.addAgent("a1")
	c.importImage()
	c.apply("main", sleepers(2))
	c.settle(time.Minute)
	before := liveTasks(c.tasks())

	for k := range reps(1, 3) {
		m := c.etcd[(k+1)%len(c.etcd)]
		m.kill()
		tally.add(c.class, counts{faults: 1})
		var log []write
		for i := range 3 {
			app := fmt.Sprintf("during%d-%d", k, i)
			_, err := c.berth("apply", "-p", app, "-f", c.writeFile(app+".yaml", sleepers(1)))
			if err != nil {
				t.Errorf("with etcd member %s down, apply failed: %v", m.name, err)
			}
			log = append(log, write{Key: app + "/web", Value: "1", Acked: err == nil})
		}
		m.start()
		m.waitOutput("ready to serve client requests", time.Minute)
		eventually(t, time.Minute, func() (bool, string) {
			out, err := runCmd(t.Context(), "ip", "netns", "exec", c.hub, "curl", "-s", "--max-time", "2", m.clientURL+"/health")
			return err == nil && strings.Contains(out, `"health":"true"`), fmt.Sprintf("%s has not rejoined: /health says %q %v", m.name, out, err)
		})
		lost := lostWrites(log, c.services())
		for _, l := range lost {
			t.Errorf("lost write: %s", l)
		}
		tally.add(c.class, counts{lost: len(lost)})
		t.Logf("etcd member %s killed and rejoined", m.name)
	}
	c.settle(2 * time.Minute)
	after := liveTasks(c.tasks())
	for id := range before {
		if _, ok := after[id]; !ok {
			t.Errorf("task %s ran before the etcd member died and no longer does", id)
		}
	}
}
