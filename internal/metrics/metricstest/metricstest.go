// Package metricstest reads what collectors report, for tests.
package metricstest

import (
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Values gathers cs through a fresh pedantic registry (which also checks
// that they describe what they collect) and returns every series by its
// text-format name: `berth_tasks{state="running"}` for gauges and
// counters, and `<name>_count` and `<name>_sum` (with the labels) for
// histograms.
func Values(t testing.TB, cs ...prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			t.Fatalf("registering a collector: %v", err)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := labelText(m.GetLabel())
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				out[f.GetName()+"_count"+labels] = float64(m.GetHistogram().GetSampleCount())
				out[f.GetName()+"_sum"+labels] = m.GetHistogram().GetSampleSum()
			case dto.MetricType_COUNTER:
				out[f.GetName()+labels] = m.GetCounter().GetValue()
			default:
				out[f.GetName()+labels] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func labelText(ls []*dto.LabelPair) string {
	if len(ls) == 0 {
		return ""
	}
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = l.GetName() + `="` + l.GetValue() + `"`
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}
