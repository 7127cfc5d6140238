package dispatcher

import (
	"google.golang.org/protobuf/proto"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// withLogDefaults gives the tasks of a whose service sets no log limits
// the cluster's (settings.logging), so that the agent creates their
// containers with the limits in force when they were sent. A cluster
// that sets none leaves the tasks as they are: the agent's defaults are
// Berth's. Tasks are the cache's, never modified: those that change are
// copies.
func withLogDefaults(settings *berthv1.ClusterSettings, a *berthv1.Assignments) {
	def := settings.GetLogging()
	if def.GetMaxSize() == 0 && def.GetMaxFile() == 0 {
		return
	}
	for i, t := range a.Tasks {
		l := t.GetSpec().GetLogging()
		size, files := l.GetMaxSize(), l.GetMaxFile()
		if (size != 0 || def.GetMaxSize() == 0) && (files != 0 || def.GetMaxFile() == 0) {
			continue
		}
		if t.GetSpec() == nil {
			continue
		}
		c := proto.Clone(t).(*berthv1.Task)
		if c.Spec.Logging == nil {
			c.Spec.Logging = &berthv1.LogConfig{}
		}
		if size == 0 {
			c.Spec.Logging.MaxSize = def.GetMaxSize()
		}
		if files == 0 {
			c.Spec.Logging.MaxFile = def.GetMaxFile()
		}
		a.Tasks[i] = c
	}
}
