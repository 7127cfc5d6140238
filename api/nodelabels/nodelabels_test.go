package nodelabels

import (
	"maps"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestMerge(t *testing.T) {
	tests := []struct {
		name            string
		agent, operator map[string]string
		want            map[string]string
	}{
		{name: "none", want: map[string]string{}},
		{name: "agent only", agent: map[string]string{"zone": "eu"}, want: map[string]string{"zone": "eu"}},
		{name: "operator only", operator: map[string]string{"tier": "db"}, want: map[string]string{"tier": "db"}},
		{name: "operator wins", agent: map[string]string{"zone": "eu", "disk": "ssd"}, operator: map[string]string{"zone": "us"},
			want: map[string]string{"zone": "us", "disk": "ssd"}},
	}
	for _, tt := range tests {
		n := &berthv1.Node{AgentLabels: tt.agent, OperatorLabels: tt.operator, Labels: map[string]string{"stale": "x"}}
		Merge(n)
		if !maps.Equal(n.Labels, tt.want) {
			t.Errorf("%s: labels %v, want %v", tt.name, n.Labels, tt.want)
		}
		if tt.agent != nil && !maps.Equal(n.AgentLabels, tt.agent) {
			t.Errorf("%s: agent labels changed to %v", tt.name, n.AgentLabels)
		}
	}
}
