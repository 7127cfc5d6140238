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
		{expr: "node.role==manager", wantErr: true},
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
