package constraint

import (
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestParse(t *testing.T) {
	tests := []struct {
		expr    string
		want    Constraint
		wantErr bool
	}{
		{expr: "node.labels.zone==eu", want: Constraint{Key: "node.labels.zone", Operator: Equal, Value: "eu"}},
		{expr: " node.hostname != db-1 ", want: Constraint{Key: "node.hostname", Operator: NotEqual, Value: "db-1"}},
		{expr: "node.id==abc", want: Constraint{Key: "node.id", Operator: Equal, Value: "abc"}},
		{expr: "node.labels.a==b!=c", want: Constraint{Key: "node.labels.a", Operator: Equal, Value: "b!=c"}},
		{expr: "node.labels.zone", wantErr: true},
		{expr: "node.labels.==x", wantErr: true},
		{expr: "node.role==manager", want: Constraint{Key: "node.role", Operator: Equal, Value: "manager"}},
		{expr: "node.role != Worker", want: Constraint{Key: "node.role", Operator: NotEqual, Value: "Worker"}},
		{expr: "node.role==boss", wantErr: true},
		{expr: "node.platform.os==linux", want: Constraint{Key: "node.platform.os", Operator: Equal, Value: "linux"}},
		{expr: "node.platform.arch!=arm64", want: Constraint{Key: "node.platform.arch", Operator: NotEqual, Value: "arm64"}},
		{expr: "node.platform.variant==v7", wantErr: true},
		{expr: "engine.labels.x==y", wantErr: true},
		{expr: "node.id==", wantErr: true},
	}
	for _, tt := range tests {
		got, err := Parse(tt.expr)
		if (err != nil) != tt.wantErr {
			t.Errorf("Parse(%q) error = %v, wantErr %v", tt.expr, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.expr, got, tt.want)
		}
	}
}

func TestMatchRoleAndPlatform(t *testing.T) {
	linux := &berthv1.Platform{Os: "linux", Architecture: "amd64"}
	tests := []struct {
		name string
		node *berthv1.Node
		expr string
		want bool
	}{
		{"manager", &berthv1.Node{Role: "manager"}, "node.role==manager", true},
		{"manager is not a worker", &berthv1.Node{Role: "manager"}, "node.role==worker", false},
		{"case does not count", &berthv1.Node{Role: "manager"}, "node.role==Manager", true},
		{"no role reads as worker", &berthv1.Node{}, "node.role==worker", true},
		{"no role is not a manager", &berthv1.Node{}, "node.role!=manager", true},
		{"a label wins", &berthv1.Node{Role: "manager", Labels: map[string]string{"node.role": "worker"}}, "node.role==worker", true},
		{"a label makes a manager", &berthv1.Node{Role: "worker", Labels: map[string]string{"node.role": "manager"}}, "node.role==manager", true},
		{"os", &berthv1.Node{Platform: linux}, "node.platform.os==linux", true},
		{"os differs", &berthv1.Node{Platform: linux}, "node.platform.os==windows", false},
		{"arch", &berthv1.Node{Platform: linux}, "node.platform.arch==AMD64", true},
		{"arch not", &berthv1.Node{Platform: linux}, "node.platform.arch!=arm64", true},
		{"no platform reported", &berthv1.Node{}, "node.platform.os==linux", false},
	}
	for _, tt := range tests {
		c, err := Parse(tt.expr)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.expr, err)
		}
		if got := c.Match(tt.node); got != tt.want {
			t.Errorf("%s: %s matches = %v, want %v", tt.name, tt.expr, got, tt.want)
		}
	}
}

func TestMatch(t *testing.T) {
	node := &berthv1.Node{
		Meta:     &berthv1.Meta{Id: "n1"},
		Name:     "alpha",
		Hostname: "host-a",
		Labels:   map[string]string{"zone": "eu"},
	}
	tests := []struct {
		expr string
		want bool
	}{
		{"node.labels.zone==eu", true},
		{"node.labels.zone!=eu", false},
		{"node.labels.zone==us", false},
		{"node.labels.disk==ssd", false},
		{"node.labels.disk!=ssd", true},
		{"node.hostname==host-a", true},
		{"node.name==alpha", true},
		{"node.id!=n1", false},
	}
	for _, tt := range tests {
		c, err := Parse(tt.expr)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.expr, err)
		}
		if got := c.Match(node); got != tt.want {
			t.Errorf("%s matches = %v, want %v", tt.expr, got, tt.want)
		}
	}
}
