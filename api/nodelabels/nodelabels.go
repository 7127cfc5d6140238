// Package nodelabels computes the labels placement reads from a node's two
// sources: those its agent describes and those an operator set.
package nodelabels

import (
	"maps"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// Merge sets n.Labels to its agent labels overlaid with its operator
// labels: an operator's value wins, so `berth node label` can override
// what an agent says of its node.
func Merge(n *berthv1.Node) {
	labels := make(map[string]string, len(n.GetAgentLabels())+len(n.GetOperatorLabels()))
	maps.Copy(labels, n.GetAgentLabels())
	maps.Copy(labels, n.GetOperatorLabels())
	n.Labels = labels
}
