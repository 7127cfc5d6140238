package e2e

import (
	"fmt"
	"testing"
	"time"
)

// rolloutBenchCompose is a service of 10 replicas that handle SIGTERM (so
// a stop takes no grace period), updated two slots at a time.
const rolloutBenchCompose = `
services:
  web:
    image: localhost/busybox:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; echo %d; while true; do sleep 1 & wait; done"]
    deploy:
      replicas: 10
      update_config:
        parallelism: 2
        order: %s
        monitor: 100ms
`

// BenchmarkRollingUpdate times `berth apply --wait` of a new version of a
// 10-replica service, stop-first and start-first, on two agents: from the
// apply to every task of the new version running and the update marked
// completed (its 100 ms monitor included).
func BenchmarkRollingUpdate(b *testing.B) {
	for _, order := range []string{"stop-first", "start-first"} {
		b.Run(order, func(b *testing.B) {
			c := newCluster(b)
			c.startAgent("alpha", "--cpus", "16", "--memory", "17179869184")
			c.startAgent("beta", "--cpus", "16", "--memory", "17179869184")
			c.importImage()
			file := c.writeFile("compose.yaml", fmt.Sprintf(rolloutBenchCompose, 0, order))
			c.mustBerth("apply", "-f", file, "-p", "bench", "--wait", "--timeout", "2m")
			var times []time.Duration
			for i := 0; i < b.N; i++ {
				c.writeFile("compose.yaml", fmt.Sprintf(rolloutBenchCompose, i+1, order))
				start := time.Now()
				c.mustBerth("apply", "-f", file, "-p", "bench", "--wait", "--timeout", "2m")
				times = append(times, time.Since(start))
			}
			reportPercentiles(b, times)
			c.mustBerth("delete", "bench")
		})
	}
}
