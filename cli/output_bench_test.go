package cli

import (
	"fmt"
	"io"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// BenchmarkWriteList prints 10,000 task rows in each output format, the
// size of a large cluster's `berth ps -A`.
func BenchmarkWriteList(b *testing.B) {
	tasks := make([]*berthv1.Task, 10000)
	for i := range tasks {
		tasks[i] = &berthv1.Task{Meta: &berthv1.Meta{Id: fmt.Sprintf("task-%06d-0123456789", i)}, App: "shop", Service: fmt.Sprintf("svc%d", i%50),
			Slot: uint64(i/50 + 1), NodeId: "n1", DesiredState: berthv1.TaskState_TASK_STATE_RUNNING,
			Status: &berthv1.TaskStatus{State: berthv1.TaskState_TASK_STATE_RUNNING}}
	}
	rows := taskRows(tasks, map[string]string{"n1": "node-1"}, time.Now())
	c := &cluster{}
	for _, f := range []outputFormat{formatTable, formatJSON, formatQuiet, jsonpathPrefix + "{[*].id}", goTemplatePrefix + "{{.service}}.{{.slot}} {{.state}}"} {
		b.Run(string(f), func(b *testing.B) {
			for b.Loop() {
				if err := writeList(io.Discard, f, rows, func(w io.Writer) { c.taskTable(w, rows, false) }, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
