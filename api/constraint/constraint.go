// Package constraint parses and evaluates placement constraints such as
// node.labels.zone==eu or node.hostname!=db-1.
package constraint

import (
	"fmt"
	"strings"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// Operator compares a node attribute with a value.
type Operator int

// The supported operators.
const (
	Equal Operator = iota
	NotEqual
)

func (o Operator) String() string {
	if o == NotEqual {
		return "!="
	}
	return "=="
}

// Constraint is one parsed placement constraint.
type Constraint struct {
	// Key is the attribute: node.id, node.hostname, node.name or node.labels.<label>.
	Key      string
	Operator Operator
	Value    string
}

const labelPrefix = "node.labels."

// Parse reads an expression of the form KEY==VALUE or KEY!=VALUE.
func Parse(expr string) (Constraint, error) {
	op, sep := Equal, "=="
	i := strings.Index(expr, "==")
	if j := strings.Index(expr, "!="); j >= 0 && (i < 0 || j < i) {
		op, sep, i = NotEqual, "!=", j
	}
	if i < 0 {
		return Constraint{}, fmt.Errorf("constraint %q: expected KEY==VALUE or KEY!=VALUE", expr)
	}
	key := strings.TrimSpace(expr[:i])
	value := strings.TrimSpace(expr[i+len(sep):])
	if value == "" {
		return Constraint{}, fmt.Errorf("constraint %q: the value after %s is empty", expr, sep)
	}
	switch {
	case key == "node.id", key == "node.hostname", key == "node.name":
	case strings.HasPrefix(key, labelPrefix) && len(key) > len(labelPrefix):
	default:
		return Constraint{}, fmt.Errorf("constraint %q: unknown key %q; use node.id, node.hostname, node.name or node.labels.<label>", expr, key)
	}
	return Constraint{Key: key, Operator: op, Value: value}, nil
}

// ParseAll parses every expression, stopping at the first error.
func ParseAll(exprs []string) ([]Constraint, error) {
	out := make([]Constraint, 0, len(exprs))
	for _, e := range exprs {
		c, err := Parse(e)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// String returns the constraint in its expression form.
func (c Constraint) String() string { return c.Key + c.Operator.String() + c.Value }

// Match reports whether node satisfies the constraint. A label the node
// lacks matches != and fails ==.
func (c Constraint) Match(node *berthv1.Node) bool {
	var actual string
	var present bool
	switch {
	case c.Key == "node.id":
		actual, present = node.GetMeta().GetId(), true
	case c.Key == "node.hostname":
		actual, present = node.GetHostname(), true
	case c.Key == "node.name":
		actual, present = node.GetName(), true
	default:
		actual, present = node.GetLabels()[strings.TrimPrefix(c.Key, labelPrefix)]
	}
	equal := present && actual == c.Value
	if c.Operator == Equal {
		return equal
	}
	return !equal
}
