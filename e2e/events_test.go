package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// event is one row of `berth events -o json`.
type event struct {
	Kind       string            `json:"kind"`
	ObjectID   string            `json:"objectId"`
	Object     string            `json:"object"`
	Action     string            `json:"action"`
	Message    string            `json:"message"`
	Attributes map[string]string `json:"attributes"`
}

func (c *cluster) events(args ...string) []event {
	c.t.Helper()
	var evs []event
	out := c.mustBerth(append(append([]string{"events"}, args...), "-o", "json")...)
	if err := json.Unmarshal([]byte(out), &evs); err != nil {
		c.t.Fatalf("berth events -o json: %v\n%s", err, out)
	}
	return evs
}

// TestEventsTellWhyATaskWasReplaced kills a container: the app's events
// say the task failed with exit code 137 and was replaced, and describe
// shows the same at the end of the service's description.
func TestEventsTellWhyATaskWasReplaced(t *testing.T) {
	c := newCluster(t)
	c.startAgent("alpha")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", sleepCompose), "-p", "told")
	victim := c.waitRunning("told/sleeper", 2, 60*time.Second)[0]
	c.killTask(victim)

	var failed, replaced event
	eventually(t, 30*time.Second, func() (bool, string) {
		evs := c.events("told")
		failed, replaced = event{}, event{}
		for _, ev := range evs {
			if ev.Kind != "task" || ev.ObjectID != victim.ID {
				continue
			}
			switch ev.Action {
			case "fail":
				failed = ev
			case "replace":
				replaced = ev
			}
		}
		return failed.Action != "" && replaced.Action != "", fmt.Sprintf("want the failure and the replacement of task %s, have %+v", victim.ID, evs)
	})
	if !strings.Contains(failed.Message, "exit code 137") || failed.Attributes["exit_code"] != "137" ||
		failed.Attributes["service"] != "sleeper" || failed.Attributes["node_name"] != "alpha" {
		t.Errorf("failure event %+v, want exit code 137 of sleeper on alpha", failed)
	}
	if want := fmt.Sprintf("replacing task sleeper.%d", victim.Slot); !strings.HasPrefix(replaced.Message, want) {
		t.Errorf("replacement event %q, want it to start with %q", replaced.Message, want)
	}

	// The table says the same, newest last.
	table := c.mustBerth("events", "told/sleeper")
	fail, repl := strings.Index(table, failed.Message), strings.Index(table, replaced.Message)
	if fail < 0 || repl < fail {
		t.Errorf("berth events told/sleeper lacks the failure then the replacement:\n%s", table)
	}

	desc := c.mustBerth("describe", "told/sleeper")
	events := strings.Index(desc, "Events:")
	if events < 0 || !strings.Contains(desc[events:], "exit code 137") || !strings.Contains(desc[events:], "replace") {
		t.Errorf("berth describe told/sleeper does not end with the failure and the replacement:\n%s", desc)
	}
	if !strings.Contains(desc, "Tasks:") || !strings.Contains(desc, victim.ID[:12]) {
		t.Errorf("berth describe told/sleeper does not list the killed task %s:\n%s", victim.ID, desc)
	}
	c.mustBerth("delete", "told")
}
