package worker

import (
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/internal/metrics/metricstest"
)

func TestMetricsCountStartsPullsAndStates(t *testing.T) {
	tests := []struct {
		name      string
		pull      bool
		wantPulls float64
	}{
		{"image on the node", false, 0},
		{"image pulled", true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := newRecordingRuntime()
			h := newHarness(t, rt)
			tk := newTask("t1")
			if tt.pull {
				h.w.SetImages(&fakeImages{rt: rt})
				tk.Spec.Image = "registry.local/web:1"
			}
			h.w.Assign(&berthv1.Assignments{Tasks: []*berthv1.Task{tk}})
			h.expect("t1", accepted, preparing)
			if tt.pull {
				h.expect("t1", preparing) // the pull's progress
			}
			h.expect("t1", starting, running)

			got := metricstest.Values(t, h.w.Collectors()...)
			for _, m := range []struct {
				series string
				want   float64
			}{
				{"berth_container_start_seconds_count", 1},
				{"berth_image_pull_seconds_count", tt.wantPulls},
				{`berth_node_tasks{state="running"}`, 1},
				{`berth_node_tasks{state="preparing"}`, 0},
			} {
				if v, ok := got[m.series]; !ok || v != m.want {
					t.Errorf("%s = %v (reported: %v), want %v", m.series, v, ok, m.want)
				}
			}
		})
	}
}
