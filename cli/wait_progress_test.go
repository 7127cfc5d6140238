package cli

import (
	"strings"
	"testing"
	"time"
)

func TestProgressPrintsReasonChangesAtMostEverySecond(t *testing.T) {
	var out strings.Builder
	p := newProgress(&out)
	now := time.Unix(0, 0)
	p.now = func() time.Time { return now }
	pulling := func(pct string) rolloutVerdict {
		return rolloutVerdict{Phase: phaseConverging, Updated: 0, Wanted: 1, Reason: "web.1 preparing: pulling " + pct + " from peer alpha"}
	}
	p.report("app/web", pulling("10%"))
	now = now.Add(300 * time.Millisecond)
	p.report("app/web", pulling("20%")) // too soon: not printed
	now = now.Add(800 * time.Millisecond)
	p.report("app/web", pulling("60%"))
	p.report("app/web", rolloutVerdict{Phase: phaseConverged, Updated: 1, Wanted: 1}) // a state change prints at once
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "10%") || !strings.Contains(lines[1], "60%") {
		t.Fatalf("printed:\n%s\nwant the 10%% line, the 60%% line and the converged line", out.String())
	}
}
