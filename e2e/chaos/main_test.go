// Package chaos injects faults into real Berth clusters (the built binary,
// real containerd, etcd and network namespaces) while they work, and
// counts what the faults cost: acknowledged writes lost, slots that ran
// twice, tasks and containers left without an owner, and whatever the
// test's own cleanup could not remove.
//
// The short form (the default, run by `make test`) injects few faults and
// cuts briefly; the long form (`make chaos`, -chaos.long or CHAOS=long)
// runs the repetitions and durations of issue 16. Both run the same code.
// The package ends with the line
//
//	chaos: N faults, lost 0, duplicates 0, orphans 0, leaked 0
//
// and fails if any count but the faults is not zero.
package chaos

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/testbin"
)

var longForm = flag.Bool("chaos.long", false, "run the long form: issue 16's repetitions and durations (also CHAOS=long)")

// Set by TestMain.
var (
	berthBin     string
	busyboxImage string
	// runRoot holds every data directory of this run; a process whose
	// command line names it is one of ours.
	runRoot string
	// runID tells this run's network namespaces, node names and
	// containerd namespaces from those of runs beside it.
	runID string
	// skipWhy is set when the suite cannot run here (not root).
	skipWhy string
)

// reps picks the short or the long form's figure.
func reps[T any](short, long T) T {
	if *longForm {
		return long
	}
	return short
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Getenv("CHAOS") == "long" {
		*longForm = true
	}
	runID = fmt.Sprintf("bc%d", os.Getpid()%100000)
	if os.Geteuid() != 0 {
		skipWhy = "the chaos suite runs containers and network namespaces and needs root (make test runs it as root)"
		return m.Run() // the pure checks still run
	}
	if code := prepare(); code != 0 {
		return code
	}
	code := m.Run()
	os.RemoveAll(runRoot)
	fmt.Println(tally.report())
	if code == 0 && tally.bad() {
		fmt.Println("chaos: FAIL: a fault lost, duplicated, orphaned or leaked something (see the counts above)")
		code = 1
	}
	return code
}

// prepare builds the binary and the test image, as e2e's TestMain does.
func prepare() int {
	root, err := filepath.Abs("../..")
	if err != nil {
		fmt.Println("chaos:", err)
		return 1
	}
	if berthBin, busyboxImage, err = testbin.Prepare(root); err != nil {
		fmt.Println("chaos:", err)
		return 1
	}
	if runRoot, err = os.MkdirTemp("", "berth-chaos-"); err != nil {
		fmt.Println("chaos:", err)
		return 1
	}
	return 0
}

// needRoot skips t where the suite cannot run.
func needRoot(t *testing.T) {
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
}

// counts is what one fault class cost. restarted counts containers that
// should have kept running through a fault and did not (agent kills,
// containerd freezes); it shows in the class's line, and fails the run.
type counts struct {
	faults, lost, duplicates, orphans, leaked, restarted int
}

func (c *counts) add(o counts) {
	c.faults += o.faults
	c.lost += o.lost
	c.duplicates += o.duplicates
	c.orphans += o.orphans
	c.leaked += o.leaked
	c.restarted += o.restarted
}

func (c counts) String() string {
	return fmt.Sprintf("%d faults, lost %d, duplicates %d, orphans %d, leaked %d", c.faults, c.lost, c.duplicates, c.orphans, c.leaked)
}

// ledger sums the counts of every fault class; subtests add to it as they
// go, so a subtest that fails half-way still reports what it injected.
type ledger struct {
	mu      sync.Mutex
	classes map[string]*counts
}

var tally = &ledger{classes: map[string]*counts{}}

// add adds c to fault class class.
func (l *ledger) add(class string, c counts) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.classes[class] == nil {
		l.classes[class] = &counts{}
	}
	l.classes[class].add(c)
}

func (l *ledger) total() counts {
	l.mu.Lock()
	defer l.mu.Unlock()
	var sum counts
	for _, c := range l.classes {
		sum.add(*c)
	}
	return sum
}

// bad reports whether any fault lost, duplicated, orphaned or leaked.
func (l *ledger) bad() bool {
	t := l.total()
	return t.lost+t.duplicates+t.orphans+t.leaked+t.restarted > 0
}

// report is one line per fault class, then the summary line.
func (l *ledger) report() string {
	l.mu.Lock()
	names := make([]string, 0, len(l.classes))
	for n := range l.classes {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	form := "short"
	if *longForm {
		form = "long"
	}
	fmt.Fprintf(&b, "chaos (%s form, %s):\n", form, time.Now().UTC().Format(time.RFC3339))
	for _, n := range names {
		c := *l.classes[n]
		fmt.Fprintf(&b, "  %-16s %s", n, c)
		if c.restarted > 0 {
			fmt.Fprintf(&b, ", restarted %d", c.restarted)
		}
		b.WriteString("\n")
	}
	l.mu.Unlock()
	fmt.Fprintf(&b, "chaos: %s", l.total())
	return b.String()
}
