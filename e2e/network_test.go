package e2e

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests are what the cluster networks must do once the overlay is
// integrated: nodes are separate hosts (newNetCluster), every container is
// on the networks of its service and finds the others by name through its
// own DNS server. Clients run inside the containers (inTask) or on a host
// of the test's LAN (c.testapp(lanHost, ...)).

const votingCompose = `
services:
  front:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "front"]
    deploy:
      placement: {constraints: ["node.name==alpha"]}
  cache:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "cache"]
    deploy:
      placement: {constraints: ["node.name==beta"]}
  db:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "db", "-data", "/data",
              "-require-file", "/run/secrets/db_password"]
    volumes: [db-data:/data]
    secrets: [db_password]
    deploy:
      placement: {constraints: ["node.name==gamma"]}
  worker:
    image: localhost/testapp:latest
    command: ["testapp", "worker", "-from", "http://cache:8080", "-to", "http://db:8080", "-every", "200ms"]
    deploy:
      placement: {constraints: ["node.name==gamma"]}
volumes:
  db-data: {}
secrets:
  db_password:
    file: ./db_password.txt
`

// TestServicesReachEachOtherAcrossNodes runs the voting app's shape over
// three nodes, on the app's default network: front on alpha, cache on
// beta, db and the worker on gamma. A service's name resolves to its
// virtual IP, tasks.NAME to its task's address; a request by name or to
// the VIP reaches the task on another node (which sees its own address).
// The front end calls the cache by name (/proxy), and votes sent through
// it reach the db by way of the worker. The db keeps its total in a
// volume and needs its password secret to start.
func TestServicesReachEachOtherAcrossNodes(t *testing.T) {
	c := newNetCluster(t, "alpha", "beta", "gamma")
	c.importTestapp()
	c.writeFile("db_password.txt", "vote-db-password")
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", votingCompose), "-p", "vote")
	for _, svc := range []string{"front", "cache", "db", "worker"} {
		c.waitRunning("vote/"+svc, 1, 60*time.Second)
	}

	vip := c.lookup("vote/front", "cache")
	taskAddrs := c.lookup("vote/front", "tasks.cache")
	if len(vip) != 1 || len(taskAddrs) != 1 || vip[0] == taskAddrs[0] {
		t.Fatalf("cache resolves to %v and tasks.cache to %v: want one virtual IP and one task address", vip, taskAddrs)
	}
	for _, url := range []string{"http://cache:8080/", "http://cache.vote:8080/", "http://" + vip[0] + ":8080/", "http://" + taskAddrs[0] + ":8080/"} {
		if id := c.reach("vote/front", url, "cache"); id.ip != taskAddrs[0] {
			t.Errorf("%s was answered on %s, want the cache task's address %s", url, id.ip, taskAddrs[0])
		}
	}

	// The front end calls the cache by name, asked by the worker by name:
	// gamma to alpha to beta.
	c.reach("vote/worker", "http://front:8080/proxy?url=http://cache:8080/", "cache")

	for range 3 {
		if out, err := c.inTask("vote/db", "get", "-X", "POST", "-d", "1", "http://front:8080/proxy?url=http://cache:8080/kv/votes"); err != nil {
			t.Fatalf("voting through front: %v %q", err, out)
		}
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		out, err := c.inTask("vote/front", "get", "http://db:8080/kv/total")
		return err == nil && out == "3", fmt.Sprintf("total in db: %v %q, want the 3 votes the worker moved", err, out)
	})
	if logs := c.mustBerth("logs", "vote/worker"); !strings.Contains(logs, "moved") {
		t.Errorf("the worker's log does not say it moved votes:\n%s", logs)
	}
	c.mustBerth("delete", "vote")
}

const shopNetworksCompose = `
services:
  web:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "web"]
    networks: [front]
    deploy:
      placement: {constraints: ["node.name==alpha"]}
  api:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "api"]
    networks: [front, back, shared]
    deploy:
      placement: {constraints: ["node.name==beta"]}
  db:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "db"]
    networks: [back]
    deploy:
      placement: {constraints: ["node.name==gamma"]}
networks:
  front: {}
  back: {}
  shared:
    external: true
`

const bankNetworksCompose = `
services:
  teller:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "teller"]
    networks: [default, shared]
    deploy:
      placement: {constraints: ["node.name==alpha"]}
  vault:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "vault"]
    deploy:
      placement: {constraints: ["node.name==gamma"]}
networks:
  shared:
    external: true
`

// TestNetworksIsolate runs two apps. shop has two networks: web and db
// each share one with api but none with each other. bank has its default
// network, and its teller shares the external network "shared" (made with
// berth network create) with shop's api. A container reaches only the
// containers it shares a network with, by name or by address, on its own
// node or another; the external network joins the two apps there only.
func TestNetworksIsolate(t *testing.T) {
	c := newNetCluster(t, "alpha", "beta", "gamma")
	c.importTestapp()
	c.mustBerth("network", "create", "shared")
	c.mustBerth("apply", "-f", c.writeFile("shop/compose.yaml", shopNetworksCompose), "-p", "shop")
	c.mustBerth("apply", "-f", c.writeFile("bank/compose.yaml", bankNetworksCompose), "-p", "bank")
	for _, target := range []string{"shop/web", "shop/api", "shop/db", "bank/teller", "bank/vault"} {
		c.waitRunning(target, 1, 60*time.Second)
	}

	// Within shop: through api's two networks, not around it.
	c.reach("shop/web", "http://api:8080/", "api")
	c.reach("shop/api", "http://db:8080/", "db")
	c.reach("shop/db", "http://api:8080/", "api")
	dbAddr := c.lookup("shop/api", "tasks.db")[0]
	webAddr := c.lookup("shop/api", "tasks.web")[0]
	c.unreachable("shop/web", "http://db:8080/")
	c.unreachable("shop/web", "http://"+dbAddr+":8080/")
	c.unreachable("shop/db", "http://"+webAddr+":8080/")

	// Across apps: only on the external network they share.
	c.reach("bank/teller", "http://api.shop:8080/", "api")
	c.reach("bank/teller", "http://api:8080/", "api")
	c.reach("shop/api", "http://teller.bank:8080/", "teller")
	apiShared := c.lookup("bank/teller", "tasks.api.shop")[0]
	vaultAddr := c.lookup("bank/teller", "tasks.vault")[0]
	c.unreachable("bank/vault", "http://api.shop:8080/")
	c.unreachable("bank/vault", "http://"+apiShared+":8080/")
	c.unreachable("bank/teller", "http://web.shop:8080/")
	c.unreachable("bank/teller", "http://"+webAddr+":8080/")
	c.unreachable("shop/web", "http://teller.bank:8080/")
	c.unreachable("shop/api", "http://"+vaultAddr+":8080/")
	// teller and web share a node (alpha) and no network.
	tellerAddr := c.lookup("shop/api", "tasks.teller.bank")[0]
	c.unreachable("shop/web", "http://"+tellerAddr+":8080/")

	c.mustBerth("delete", "bank")
	c.mustBerth("delete", "shop")
	c.mustBerth("network", "rm", "shared")
}

const internalCompose = `
services:
  api:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "api"]
    networks: [default, back]
    deploy:
      placement: {constraints: ["node.name==alpha"]}
  db:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "db"]
    networks: [back]
    deploy:
      placement: {constraints: ["node.name==beta"]}
networks:
  back:
    internal: true
`

// TestInternalNetworkHasNoWayOut: db is only on an internal network. It
// still reaches api, which shares that network, but nothing outside the
// cluster (a server on the LAN) nor its own node, while api, also on the
// app's default network, reaches the LAN server (masqueraded).
func TestInternalNetworkHasNoWayOut(t *testing.T) {
	c := newNetCluster(t, "alpha", "beta")
	c.importTestapp()
	c.serveOn(lanHost, "outside", 8081)
	c.serveOn("beta", "beta-host", 8081)
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", internalCompose), "-p", "locked")
	c.waitRunning("locked/api", 1, 60*time.Second)
	c.waitRunning("locked/db", 1, 60*time.Second)

	outside := fmt.Sprintf("http://%s:8081/", c.addr(lanHost))
	if id := c.reach("locked/api", outside, "outside"); id.ip != c.addr(lanHost) {
		t.Errorf("the LAN server saw the request on %s", id.ip)
	}
	c.reach("locked/db", "http://api:8080/", "api")
	c.reach("locked/api", "http://db:8080/", "db")
	// Its own name leads db back to itself through its virtual IP, though
	// it has no default route.
	c.reach("locked/db", "http://db:8080/", "db")
	c.unreachable("locked/db", outside)
	c.unreachable("locked/db", fmt.Sprintf("http://%s:8081/", c.addr("beta")))
	c.mustBerth("delete", "locked")
}

// vipCompose is web, three replicas behind a virtual IP with an HTTP
// health check, updated one at a time in the order given; and a client.
// ROUND changes the spec, so applying another ROUND rolls web out.
const vipCompose = `
services:
  web:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "web"]
    environment:
      ROUND: "%d"
    healthcheck:
      x-berth-http: {port: 8080, path: /health}
      interval: 200ms
      retries: 2
    deploy:
      replicas: 3
      update_config:
        parallelism: 1
        order: %s
  client:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "client"]
    deploy:
      placement: {constraints: ["node.name==alpha"]}
`

// requestLoop asks a URL again and again from inside a task, and keeps
// each outcome with the time the request started.
type requestLoop struct {
	mu      sync.Mutex
	results []requestResult
	stop    chan struct{}
	done    chan struct{}
}

type requestResult struct {
	start time.Time
	out   string
	err   error
}

// startRequests starts a loop of requests of url from inside task target,
// stopped when the test ends.
func (c *netCluster) startRequests(target, url string) *requestLoop {
	l := &requestLoop{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			start := time.Now()
			out, err := c.inTask(target, "get", "-timeout", "2s", url)
			l.mu.Lock()
			l.results = append(l.results, requestResult{start, out, err})
			l.mu.Unlock()
		}
	}()
	c.t.Cleanup(func() {
		close(l.stop)
		<-l.done
	})
	return l
}

// since returns the outcomes of the requests that started after from
// (and before until, if it is not zero).
func (l *requestLoop) since(from, until time.Time) []requestResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []requestResult
	for _, r := range l.results {
		if r.start.After(from) && (until.IsZero() || r.start.Before(until)) {
			out = append(out, r)
		}
	}
	return out
}

// failures describes the failed requests among rs, "" if none failed.
func failures(rs []requestResult) string {
	var b strings.Builder
	for _, r := range rs {
		if r.err != nil {
			fmt.Fprintf(&b, "%s: %v\n", r.start.Format("15:04:05.000"), r.err)
		}
	}
	return b.String()
}

// answeredAfter waits for n requests that started after from, and fails
// the test if any of them got no answer.
func (l *requestLoop) answeredAfter(t testing.TB, what string, from time.Time, n int) {
	t.Helper()
	var rs []requestResult
	eventually(t, 60*time.Second, func() (bool, string) {
		rs = l.since(from, time.Time{})
		return len(rs) >= n, fmt.Sprintf("%s: %d requests made, want %d", what, len(rs), n)
	})
	if f := failures(rs); f != "" {
		t.Fatalf("%s: requests failed after the service converged:\n%s", what, f)
	}
}

// TestVIPSurvivesTaskLoss keeps asking web's name (its virtual IP) for
// /health from a client on alpha while web's tasks are killed, rolled out
// start-first and stop-first, and turn unhealthy. A lost task leaves the
// VIP as soon as its end is known; a task being replaced or updated
// leaves it before it stops; an unhealthy one as soon as it is found
// unhealthy. Every request made after that answers.
func TestVIPSurvivesTaskLoss(t *testing.T) {
	c := newNetCluster(t, "alpha", "beta", "gamma")
	c.importTestapp()
	compose := c.writeFile("compose.yaml", fmt.Sprintf(vipCompose, 1, "start-first"))
	c.mustBerth("apply", "-f", compose, "-p", "vip", "--wait", "--timeout", "60s")
	c.waitRunning("vip/client", 1, 60*time.Second)
	tasks := c.waitRunning("vip/web", 3, 60*time.Second)
	loop := c.startRequests("vip/client", "http://web:8080/health")
	loop.answeredAfter(t, "before anything happens", time.Now(), 5)

	t.Log("a task is killed")
	victim := tasks[0]
	for _, tk := range tasks {
		if tk.Node != "alpha" {
			victim = tk // on another node than the client
		}
	}
	c.killTask(victim)
	eventually(t, 30*time.Second, func() (bool, string) {
		for _, tk := range c.ps("vip/web", "-a") {
			if tk.ID == victim.ID {
				return tk.State == "failed", fmt.Sprintf("killed task: %+v", tk)
			}
		}
		return false, "the killed task is gone from ps -a"
	})
	loop.answeredAfter(t, "after a task was killed", time.Now(), 20)
	c.waitRunning("vip/web", 3, 60*time.Second)

	// A rollout takes each task out of the VIP before it stops it: not
	// one request fails while it runs.
	for round, order := range []string{"start-first", "stop-first"} {
		round += 2
		t.Log("a rollout", order)
		c.writeFile("compose.yaml", fmt.Sprintf(vipCompose, round, order))
		from := time.Now()
		c.mustBerth("apply", "-f", compose, "-p", "vip", "--wait", "--timeout", "90s")
		rs := loop.since(from, time.Now())
		if f := failures(rs); f != "" || len(rs) < 3 {
			t.Fatalf("during a %s rollout, %d requests, failed:\n%s", order, len(rs), f)
		}
	}

	t.Log("a task turns unhealthy")
	var sick string
	for _, tk := range c.waitRunning("vip/web", 3, 60*time.Second) {
		if tk.Node != "alpha" {
			sick = tk.ID
		}
	}
	if out, err := c.inTask(sick, "get", "-X", "POST", "http://127.0.0.1:8080/sick"); err != nil {
		t.Fatalf("making %s sick: %v %q", sick, err, out)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		for _, tk := range c.ps("vip/web", "-a") {
			if tk.ID == sick {
				return tk.Health == "unhealthy", fmt.Sprintf("sick task: %+v", tk)
			}
		}
		return false, "the sick task is gone from ps -a"
	})
	loop.answeredAfter(t, "after a task turned unhealthy", time.Now(), 20)
	c.mustBerth("delete", "vip")
}

const ingressCompose = `
services:
  web:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "web"]
    ports:
      - "8080:8080"
    deploy:
      replicas: 2
      placement: {constraints: ["node.name!=gamma", "node.name!=delta"]}
`

// TestIngressAnswersOnEveryNode publishes web's port through the ingress:
// web runs on alpha and beta only, yet a client on the LAN gets an answer
// on the port of every node: gamma, which runs no task, and delta, a node
// in another subnet behind a router. Requests to one node reach the tasks
// of both others.
func TestIngressAnswersOnEveryNode(t *testing.T) {
	c := newNetCluster(t, "alpha", "beta", "gamma")
	c.addRoutedNode("delta")
	c.importTestapp()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", ingressCompose), "-p", "edge")
	tasks := c.waitRunning("edge/web", 2, 60*time.Second)
	c.taskOn(tasks, "alpha")
	c.taskOn(tasks, "beta")

	for _, node := range []string{"alpha", "beta", "gamma", "delta"} {
		url := fmt.Sprintf("http://%s:8080/", c.addr(node))
		eventually(t, 30*time.Second, func() (bool, string) {
			out, err := c.testapp(lanHost, "get", "-timeout", "2s", url)
			id, ok := parseServedBy(out)
			return err == nil && ok && id.name == "web", fmt.Sprintf("%s from the LAN: %v %q", url, err, out)
		})
	}
	// gamma's port leads to both tasks.
	seen := map[string]bool{}
	url := fmt.Sprintf("http://%s:8080/", c.addr("gamma"))
	eventually(t, 30*time.Second, func() (bool, string) {
		out, err := c.testapp(lanHost, "get", "-timeout", "2s", url)
		if id, ok := parseServedBy(out); err == nil && ok {
			seen[id.hostname] = true
		}
		return len(seen) == 2, fmt.Sprintf("%s reached the tasks %v, want both", url, seen)
	})
	c.mustBerth("delete", "edge")
	eventually(t, 30*time.Second, func() (bool, string) {
		out, err := c.testapp(lanHost, "get", "-timeout", "2s", url)
		return err != nil, fmt.Sprintf("after delete, %s still answers %q", url, out)
	})
}

const joinLaterCompose = `
services:
  web:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "web"]
    ports:
      - "8080:8080"
    deploy:
      placement: {constraints: ["node.name==alpha"]}
  api:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "api"]
    deploy:
      placement: {constraints: ["node.name==beta"]}
  probe:
    image: localhost/testapp:latest
    command: ["testapp", "serve", "-port", "8080", "-name", "probe"]
    deploy:
      mode: global
`

// TestNodeJoiningLaterReachesEverything runs an app on alpha and beta,
// then a node joins from another subnet: the global service's task there
// reaches web and api by name, the tasks that were there before reach it,
// and the ingress port answers on the new node.
func TestNodeJoiningLaterReachesEverything(t *testing.T) {
	c := newNetCluster(t, "alpha", "beta")
	c.importTestapp()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", joinLaterCompose), "-p", "late")
	c.waitRunning("late/web", 1, 60*time.Second)
	c.waitRunning("late/api", 1, 60*time.Second)
	c.waitRunning("late/probe", 2, 60*time.Second)

	c.addRoutedNode("gamma")
	c.waitRunning("late/probe", 3, 60*time.Second)
	probe := c.taskID("late/probe", "gamma")
	c.reach(probe, "http://web:8080/", "web")
	c.reach(probe, "http://api:8080/", "api")
	addrs := c.lookup("late/api", "tasks.probe")
	if len(addrs) != 3 {
		t.Fatalf("tasks.probe = %v, want the three probes' addresses", addrs)
	}
	var probeAddr string
	for _, a := range addrs {
		id := c.reach("late/web", "http://"+a+":8080/", "probe")
		if !slices.Contains(addrs, id.ip) {
			t.Fatalf("probe answered on %s, not one of %v", id.ip, addrs)
		}
		if id.hostname == probe { // a container's hostname is its task's ID
			probeAddr = a
		}
	}
	if probeAddr == "" {
		t.Errorf("no address of tasks.probe leads to the new node's probe %s", probe)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		url := fmt.Sprintf("http://%s:8080/", c.addr("gamma"))
		out, err := c.testapp(lanHost, "get", "-timeout", "2s", url)
		id, ok := parseServedBy(out)
		return err == nil && ok && id.name == "web", fmt.Sprintf("%s from the LAN: %v %q", url, err, out)
	})
	c.mustBerth("delete", "late")
}
