package constraint

import (
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// FuzzParse checks that any expression parses or fails without panicking,
// and that a parsed constraint writes back to an expression that parses
// to the same constraint, with a known key and a value that is not empty.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"node.labels.zone==eu", " node.hostname != db-1 ", "node.id==abc", "node.labels.a==b!=c",
		"node.labels.zone", "node.labels.==x", "node.role==manager", "node.role != Worker", "node.role==boss",
		"node.platform.os==linux", "node.platform.arch!=arm64", "node.platform.variant==v7", "engine.labels.x==y",
		"node.id==", "node.labels.x!==y", "==", "!=", "",
	} {
		f.Add(seed)
	}
	node := &berthv1.Node{Name: "alpha", Hostname: "host-a", Role: "manager", Labels: map[string]string{"zone": "eu"},
		Platform: &berthv1.Platform{Os: "linux", Architecture: "amd64"}}
	f.Fuzz(func(t *testing.T, expr string) {
		c, err := Parse(expr)
		if err != nil {
			return
		}
		if c.Value == "" || c.Key == "" || c.Key != strings.TrimSpace(c.Key) || c.Value != strings.TrimSpace(c.Value) {
			t.Fatalf("Parse(%q) = %+v: empty or untrimmed key or value", expr, c)
		}
		again, err := Parse(c.String())
		if err != nil || again != c {
			t.Fatalf("Parse(%q) = %+v; its String %q parses to %+v, %v", expr, c, c.String(), again, err)
		}
		c.Match(node)
		c.Match(&berthv1.Node{})
	})
}
