package apiserver

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/nodelabels"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	maxLabelKeyLength   = 128
	maxLabelValueLength = 256
)

// availabilityWords say what setting an availability did to a node, for
// events and logs.
var availabilityWords = map[berthv1.NodeAvailability]string{
	berthv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE: "activated",
	berthv1.NodeAvailability_NODE_AVAILABILITY_PAUSE:  "paused",
	berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN:  "drained",
}

// UpdateNode sets a node's availability and its operator labels. The
// node's labels, which placement reads, become its agent's labels overlaid
// with the operator's.
func (s *Server) UpdateNode(ctx context.Context, req *berthv1.UpdateNodeRequest) (*berthv1.Node, error) {
	if err := validateNodeUpdate(req); err != nil {
		return nil, err
	}
	n, ok := s.findNode(req.Node)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "node %q not found; `berth node ls` lists the nodes", req.Node)
	}
	id := n.GetMeta().GetId()
	read := func() (*berthv1.Node, error) {
		n, ok := s.cfg.Cache.Node(id)
		if !ok {
			return nil, status.Errorf(codes.NotFound, "node %q was removed", req.Node)
		}
		return n, nil
	}
	var what []string
	node, err := guardedUpdate(ctx, s, store.NodeKey(id), read, func(n *berthv1.Node) error {
		var err error
		what, err = changeNode(n, req)
		if err == nil && len(what) == 0 {
			return errUnchanged
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(what) > 0 {
		msg := "node " + node.Name + " " + strings.Join(what, "; ")
		s.log.Info("node updated", "node", node.Name, "id", id, "change", msg)
		s.cfg.Store.RecordEvent(&berthv1.Event{
			Kind: store.EventKindNode, ObjectId: id, Action: "update", Message: msg,
			Attributes: map[string]string{store.AttrNode: id, store.AttrNodeName: node.Name},
		})
	}
	return node, nil
}

// changeNode applies req to n and says what changed, in words; nothing
// when req changes nothing.
func changeNode(n *berthv1.Node, req *berthv1.UpdateNodeRequest) ([]string, error) {
	var what []string
	if a := req.Availability; a != berthv1.NodeAvailability_NODE_AVAILABILITY_UNSPECIFIED && a != n.Availability {
		n.Availability = a
		what = append(what, availabilityWords[a]+" by an operator")
	}
	if n.AgentLabels == nil && n.OperatorLabels == nil {
		// Registered before agent and operator labels were kept apart:
		// every label it has came from its agent.
		n.AgentLabels = n.Labels
	}
	var set, removed []string
	for _, k := range slices.Sorted(maps.Keys(req.SetLabels)) {
		v := req.SetLabels[k]
		if cur, ok := n.OperatorLabels[k]; ok && cur == v {
			continue
		}
		if n.OperatorLabels == nil {
			n.OperatorLabels = map[string]string{}
		}
		n.OperatorLabels[k] = v
		set = append(set, k+"="+v)
	}
	for _, k := range slices.Sorted(slices.Values(req.RemoveLabels)) {
		if _, ok := n.OperatorLabels[k]; ok {
			delete(n.OperatorLabels, k)
			removed = append(removed, k)
			continue
		}
		if _, ok := n.AgentLabels[k]; ok {
			return nil, status.Errorf(codes.FailedPrecondition, "label %q of node %s comes from its agent (--label), fixed when the node joined: override its value instead (berth node label %s %s=VALUE)", k, n.Name, n.Name, k)
		}
	}
	if len(set) > 0 {
		what = append(what, "labels set: "+strings.Join(set, ", "))
	}
	if len(removed) > 0 {
		what = append(what, "labels removed: "+strings.Join(removed, ", "))
	}
	nodelabels.Merge(n)
	return what, nil
}

// validateNodeUpdate checks a request before anything is read: a node is
// named, the availability is known, and every label is usable in a
// placement constraint.
func validateNodeUpdate(req *berthv1.UpdateNodeRequest) error {
	if req.Node == "" {
		return status.Error(codes.InvalidArgument, "name the node to update (its name or ID)")
	}
	if a := req.Availability; a != berthv1.NodeAvailability_NODE_AVAILABILITY_UNSPECIFIED && availabilityWords[a] == "" {
		return status.Errorf(codes.InvalidArgument, "unknown availability %d; use active, pause or drain", a)
	}
	var problems []string
	for _, k := range slices.Sorted(maps.Keys(req.SetLabels)) {
		if err := validateLabelKey(k); err != nil {
			problems = append(problems, err.Error())
		} else if err := validateLabelValue(k, req.SetLabels[k]); err != nil {
			problems = append(problems, err.Error())
		}
	}
	for _, k := range req.RemoveLabels {
		if err := validateLabelKey(k); err != nil {
			problems = append(problems, err.Error())
		} else if _, ok := req.SetLabels[k]; ok {
			problems = append(problems, fmt.Sprintf("label %q is both set and removed; do one or the other", k))
		}
	}
	if len(problems) > 0 {
		return status.Error(codes.InvalidArgument, strings.Join(problems, "; "))
	}
	return nil
}

// validateLabelKey accepts what a constraint like node.labels.KEY==VALUE
// can name: letters, digits, '.', '-', '_' and '/', starting and ending
// with a letter or digit.
func validateLabelKey(k string) error {
	switch {
	case k == "":
		return fmt.Errorf("a label has an empty key; write labels as KEY=VALUE")
	case strings.Contains(k, "="):
		return fmt.Errorf("label key %q contains '='; write labels as KEY=VALUE with no '=' in the key", k)
	case len(k) > maxLabelKeyLength:
		return fmt.Errorf("label key %q is longer than %d characters", k, maxLabelKeyLength)
	}
	for _, r := range k {
		if !labelKeyRune(r) {
			return fmt.Errorf("label key %q contains %q; use letters, digits, '.', '-', '_' and '/'", k, r)
		}
	}
	if first, last := rune(k[0]), rune(k[len(k)-1]); !isAlnum(first) || !isAlnum(last) {
		return fmt.Errorf("label key %q must start and end with a letter or digit", k)
	}
	return nil
}

// validateLabelValue accepts any printable value without surrounding
// spaces (constraints trim them, so such a value could never match).
func validateLabelValue(k, v string) error {
	switch {
	case len(v) > maxLabelValueLength:
		return fmt.Errorf("the value of label %q is longer than %d characters", k, maxLabelValueLength)
	case strings.TrimSpace(v) != v:
		return fmt.Errorf("the value of label %q starts or ends with a space; constraints could never match it", k)
	case strings.IndexFunc(v, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return fmt.Errorf("the value of label %q contains a control character", k)
	}
	return nil
}

func labelKeyRune(r rune) bool {
	return isAlnum(r) || r == '.' || r == '-' || r == '_' || r == '/'
}

func isAlnum(r rune) bool {
	return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
}
