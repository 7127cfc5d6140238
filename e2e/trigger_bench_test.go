package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// BenchmarkTriggerRollout times a build trigger end to end, three times:
// from a signed push webhook to the new digest running on both machines
// of tr/web (build from the git daemon, push to the registry, rollout of
// 2 replicas one at a time with a 100 ms monitor). The image is small:
// busybox and one RUN step.
func BenchmarkTriggerRollout(b *testing.B) {
	f := newTriggerFixture(b)
	const rounds = 3
	var times []time.Duration
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			v := fmt.Sprintf("bench-%d-%d", i, r)
			commit := f.repo.commit(map[string]string{"site/Dockerfile": siteDockerfile(v)}, v)
			body := pushEvent("main", commit)
			start := time.Now()
			code, answer := f.postHook(b, body, sign(f.secret, body))
			var queued struct{ Run string }
			if code != http.StatusAccepted || json.Unmarshal([]byte(answer), &queued) != nil {
				b.Fatalf("push: %d %s", code, answer)
			}
			run := f.waitRun(b, queued.Run, 4*time.Minute)
			if run.State != "succeeded" {
				b.Fatalf("run %+v", run)
			}
			f.waitDigestOnBothNodes(b, strings.TrimPrefix(run.Image, f.image+"@"), 2*time.Minute)
			d := time.Since(start)
			times = append(times, d)
			b.Logf("webhook to new digest running on 2 nodes: %s (commit %s)", d.Round(time.Millisecond), commit[:12])
		}
	}
	reportPercentiles(b, times)
	fmt.Printf("BenchmarkTriggerRollout: webhook to new digest running on 2 nodes: p50 %s over %d runs\n", times[len(times)/2].Round(time.Millisecond), len(times))
	f.c.mustBerth("delete", "tr")
}
