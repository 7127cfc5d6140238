// Package constraint parses and evaluates placement constraints such as
// node.labels.zone==eu, node.hostname!=db-1 or node.role==manager.
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
	// Key is the attribute: node.id, node.hostname, node.name, node.role,
	// node.platform.os, node.platform.arch or node.labels.<label>.
	Key      string
	Operator Operator
	Value    string
}

// The keys of a constraint besides node.labels.<label>.
const (
	KeyID       = "node.id"
	KeyHostname = "node.hostname"
	KeyName     = "node.name"
	// KeyRole is "manager" for a node on a machine that also runs a Berth
	// server, "worker" otherwise (Node.role; a label of this name wins).
	KeyRole = "node.role"
	// KeyOS and KeyArch are the node's platform, as Go names it (linux,
	// amd64); validation.Normalize writes other spellings (x86_64) so.
	KeyOS   = "node.platform.os"
	KeyArch = "node.platform.arch"
)

// The roles of a node.
const (
	RoleManager = "manager"
	RoleWorker  = "worker"
)

const labelPrefix = "node.labels."

// Role is a node's role as constraints read it: the label node.role (an
// operator's label, or its agent's), else the role the control plane gave
// it, else worker.
func Role(node *berthv1.Node) string {
	if r, ok := node.GetLabels()[KeyRole]; ok {
		return r
	}
	if r := node.GetRole(); r != "" {
		return r
	}
	return RoleWorker
}

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
	case key == KeyID, key == KeyHostname, key == KeyName, key == KeyOS, key == KeyArch:
	case key == KeyRole:
		if !strings.EqualFold(value, RoleManager) && !strings.EqualFold(value, RoleWorker) {
			return Constraint{}, fmt.Errorf("constraint %q: a node's role is %s or %s", expr, RoleManager, RoleWorker)
		}
	case strings.HasPrefix(key, labelPrefix) && len(key) > len(labelPrefix):
	default:
		return Constraint{}, fmt.Errorf("constraint %q: unknown key %q; use node.id, node.hostname, node.name, node.role, node.platform.os, node.platform.arch or node.labels.<label>", expr, key)
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
// lacks matches != and fails ==. A role and a platform's names compare
// without case, as Swarm compares them.
func (c Constraint) Match(node *berthv1.Node) bool {
	var actual string
	present, fold := true, false
	switch c.Key {
	case KeyID:
		actual = node.GetMeta().GetId()
	case KeyHostname:
		actual = node.GetHostname()
	case KeyName:
		actual = node.GetName()
	case KeyRole:
		actual, fold = Role(node), true
	case KeyOS:
		actual, fold = node.GetPlatform().GetOs(), true
	case KeyArch:
		actual, fold = node.GetPlatform().GetArchitecture(), true
	default:
		actual, present = node.GetLabels()[strings.TrimPrefix(c.Key, labelPrefix)]
	}
	equal := present && (actual == c.Value || fold && strings.EqualFold(actual, c.Value))
	if c.Operator == Equal {
		return equal
	}
	return !equal
}
