package metrics

import (
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/prometheus/client_golang/prometheus"
)

// Counts is a gauge family with one label whose values are counted when
// Prometheus scrapes: tasks by state, nodes by status. Counting at scrape
// time from a cache the process keeps anyway costs nothing between scrapes
// and can never drift from what the cache holds.
type Counts struct {
	desc   *prometheus.Desc
	always []string
	count  func() map[string]int
}

// NewCounts returns a gauge family name{label=...} whose values count
// returns at each scrape. Every value in always is reported, zero when
// count leaves it out, so a state that empties shows 0 rather than
// vanishing.
func NewCounts(name, help, label string, always []string, count func() map[string]int) *Counts {
	return &Counts{
		desc:   prometheus.NewDesc(name, help, []string{label}, nil),
		always: always,
		count:  count,
	}
}

// Describe implements prometheus.Collector.
func (c *Counts) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *Counts) Collect(ch chan<- prometheus.Metric) {
	counts := c.count()
	for _, v := range c.always {
		if _, ok := counts[v]; !ok {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 0, v)
		}
	}
	for v, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), v)
	}
}

// NewTaskCounts returns a gauge family name{state=...} with the number of
// tasks in each state that counts returns at each scrape, every state from
// "new" to "orphaned" reported.
func NewTaskCounts(name, help string, counts func() map[berthv1.TaskState]int) *Counts {
	var all []string
	for n := range berthv1.TaskState_name {
		if s := berthv1.TaskState(n); s != berthv1.TaskState_TASK_STATE_UNSPECIFIED {
			all = append(all, taskstate.Name(s))
		}
	}
	return NewCounts(name, help, "state", all, func() map[string]int {
		named := map[string]int{}
		for s, n := range counts() {
			named[taskstate.Name(s)] += n
		}
		return named
	})
}
