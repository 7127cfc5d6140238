package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// auditRow is one row of `berth audit -o json`.
type auditRow struct {
	ID        string `json:"id"`
	Principal string `json:"principal"`
	Role      string `json:"role"`
	Method    string `json:"method"`
	Namespace string `json:"namespace"`
	Target    string `json:"target"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	Peer      string `json:"peer"`
}

func (c *cluster) audit(args ...string) []auditRow {
	c.t.Helper()
	var rows []auditRow
	out := c.mustBerth(append(append([]string{"audit"}, args...), "-o", "json")...)
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		c.t.Fatalf("berth audit -o json: %v\n%s", err, out)
	}
	return rows
}

// TestAuditRecordsEveryChangeWithItsAuthor applies, scales and deletes an
// app and scales one that does not exist: berth audit lists each call with
// who made it, where, on what, and the result; reads are not recorded;
// the --audit-log file holds the same records as JSON lines.
func TestAuditRecordsEveryChangeWithItsAuthor(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "audit.jsonl")
	c := newCluster(t, withServerArgs("--audit-log", logPath))
	c.startAgent("alpha")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", sleepCompose), "-p", "audited")
	c.mustBerth("scale", "audited/sleeper=1")
	c.ps("audited")
	if out, errOut, err := c.berth("scale", "nope/web=2"); err == nil {
		t.Fatalf("scaling an app that does not exist succeeded:\n%s%s", out, errOut)
	}
	c.mustBerth("delete", "audited")

	type call struct{ method, namespace, target, code string }
	want := []call{
		{"ImportImage", "", "", "OK"},
		{"Apply", "default", "app audited", "OK"},
		{"ScaleService", "default", "service audited/sleeper", "OK"},
		{"ScaleService", "default", "service nope/web", "NotFound"},
		{"DeleteApp", "default", "app audited", "OK"},
	}
	// The records were written before the calls answered: no waiting.
	rows := c.audit()
	var got []call
	for _, r := range rows {
		if r.Method == "JoinToken" || r.Method == "Join" {
			continue // the harness's, to join the agent
		}
		got = append(got, call{r.Method, r.Namespace, r.Target, r.Code})
		// The CLI's calls are made with the admin certificate the server
		// wrote, whatever kind the principal's name is given.
		if !strings.HasSuffix(r.Principal, "/admin") || r.Role != "admin" {
			t.Errorf("%s made by %q (%s), want the admin certificate's principal", r.Method, r.Principal, r.Role)
		}
		if !strings.HasPrefix(r.Peer, "127.0.0.1:") {
			t.Errorf("%s from peer %q, want the CLI's loopback address", r.Method, r.Peer)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("berth audit lists\n  %v\nwant\n  %v\nall rows: %+v", got, want, rows)
	}
	for _, r := range rows {
		if r.Code == "NotFound" && !strings.Contains(r.Message, "nope") {
			t.Errorf("the failed call's message %q does not say what was missing", r.Message)
		}
	}

	// Filters: by a bare name, by a principal of another kind, by
	// namespace.
	byAdmin := 0
	for _, r := range rows {
		if strings.HasSuffix(r.Principal, "/admin") {
			byAdmin++
		}
	}
	if n := len(c.audit("--user", "admin")); n != byAdmin || n < len(want) {
		t.Errorf("--user admin lists %d records, want the admin's %d", n, byAdmin)
	}
	if n := len(c.audit("--user", "token/admin")); n != 0 {
		t.Errorf("--user token/admin lists %d records, want none", n)
	}
	if n := len(c.audit("-n", "default", "--since", "1h")); n != 4 {
		t.Errorf("-n default lists %d records, want the 4 calls in it", n)
	}

	// The server exported the same records, one JSON object a line, in a
	// file only its owner reads.
	fi, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("audit log mode %v, want 0600", fi.Mode().Perm())
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]auditRow{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r auditRow
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("audit log line %q is not a JSON object: %v", line, err)
		}
		exported[r.ID] = r
	}
	if len(exported) != len(rows) {
		t.Errorf("audit log holds %d records, berth audit %d:\n%s", len(exported), len(rows), data)
	}
	for _, r := range rows {
		if e, ok := exported[r.ID]; !ok || e != r {
			t.Errorf("record %+v exported as %+v", r, e)
		}
	}
}
