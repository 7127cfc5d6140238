package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
)

// newNodeCommand is "berth node": "ls" (which is "berth get nodes"), the
// availability commands (drain, pause, activate) and "label".
func newNodeCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "node",
		Short:   "Manage the nodes of the cluster",
		GroupID: groupCluster,
	}
	ls := newGetNodesCommand(o, "ls", []string{"list"})
	ls.Example = "  berth node ls\n  berth node ls -o json"
	cmd.AddCommand(
		ls,
		newNodeAvailabilityCommand(o, berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN, "drain",
			"Move every task off nodes and place no new ones there",
			`Drain nodes, to take them out of service: each running task gets a
replacement on another node and stops once the replacement is ready, and
no new task is placed on them. Tasks of global services stop. "berth node
activate" takes them back.`),
		newNodeAvailabilityCommand(o, berthv1.NodeAvailability_NODE_AVAILABILITY_PAUSE, "pause",
			"Place no new tasks on nodes; leave their tasks running",
			`Pause nodes: the tasks they run keep running, and no new task is placed on
them. "berth node activate" takes them back.`),
		newNodeAvailabilityCommand(o, berthv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE, "activate",
			"Make drained or paused nodes take tasks again",
			`Make nodes active again: new tasks can be placed on them. The tasks that
moved away stay where they are; "berth rebalance" spreads them again.`),
		newNodeLabelCommand(o),
		newNodeRemoveCommand(o),
		newNodeDownCommand(o),
	)
	requireSubcommand(cmd)
	return cmd
}

func newNodeAvailabilityCommand(o *rootOptions, a berthv1.NodeAvailability, verb, short, long string) *cobra.Command {
	return &cobra.Command{
		Use:     verb + " NODE...",
		Short:   short,
		Long:    long,
		Example: fmt.Sprintf("  berth node %s node-1\n  berth node %s node-1 node-2", verb, verb),
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return updateNodes(cmd, o, args, func(c *cluster, ref string) (string, error) {
				n, err := c.UpdateNode(cmd.Context(), &berthv1.UpdateNodeRequest{Node: ref, Availability: a})
				if err != nil {
					return "", err
				}
				return c.availabilityResult(cmd.Context(), n)
			})
		},
	}
}

// updateNodes runs update for each node named, printing each result; a
// node that fails does not stop the others.
func updateNodes(cmd *cobra.Command, o *rootOptions, refs []string, update func(c *cluster, ref string) (string, error)) error {
	return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
		failed := 0
		for _, ref := range refs {
			line, err := update(c, ref)
			if err != nil {
				if len(refs) == 1 {
					return fmt.Errorf("update node %s: %w", ref, err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "berth: update node %s: %s\n", ref, userMessage(err))
				failed++
				continue
			}
			fmt.Fprintln(cmd.OutOrStdout(), line)
		}
		if failed > 0 {
			return fmt.Errorf("%d of %d nodes were not updated", failed, len(refs))
		}
		return nil
	})
}

// availabilityResult says what a node's new availability means for its
// tasks: "node-1 drained: 3 tasks are moving to other nodes".
func (c *cluster) availabilityResult(ctx context.Context, n *berthv1.Node) (string, error) {
	name := n.GetName()
	switch n.GetAvailability() {
	case berthv1.NodeAvailability_NODE_AVAILABILITY_ACTIVE:
		return name + " active: new tasks can be placed on it; tasks that moved away stay where they are (`berth rebalance` spreads them)", nil
	case berthv1.NodeAvailability_NODE_AVAILABILITY_PAUSE:
		return name + " paused: its tasks keep running; no new task is placed on it", nil
	case berthv1.NodeAvailability_NODE_AVAILABILITY_DRAIN:
		return c.drainResult(ctx, n)
	}
	return fmt.Sprintf("%s %s", name, availabilityWord(n.GetAvailability())), nil
}

// drainResult counts the tasks a drain moves off n.
func (c *cluster) drainResult(ctx context.Context, n *berthv1.Node) (string, error) {
	name := n.GetName()
	// Tasks of every namespace run on a node.
	resp, err := c.ListTasks(ctx, &berthv1.ListTasksRequest{NodeId: n.GetMeta().GetId()})
	if err != nil {
		return "", fmt.Errorf("list the tasks of node %s: %w", name, err)
	}
	var moving, stopping int
	for _, t := range resp.GetTasks() {
		switch {
		case !taskstate.Live(t):
		case t.GetSlot() == 0:
			stopping++ // a global service's: it has nowhere else to go
		default:
			moving++
		}
	}
	if moving+stopping == 0 {
		return name + " drained: no task runs on it; no new task is placed on it", nil
	}
	var parts []string
	if moving > 0 {
		parts = append(parts, plural(moving, "task")+" moving to other nodes")
	}
	if stopping > 0 {
		parts = append(parts, plural(stopping, "task")+" of global services stopping")
	}
	return fmt.Sprintf("%s drained: %s (follow them with `berth ps --node %s`)", name, strings.Join(parts, ", "), name), nil
}

// plural is "1 task", "3 tasks".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// parseLabelChanges reads KEY=VALUE (set) and KEY- (remove) arguments.
func parseLabelChanges(args []string) (set map[string]string, remove []string, err error) {
	set = map[string]string{}
	for _, arg := range args {
		if k, v, ok := strings.Cut(arg, "="); ok {
			if k == "" {
				return nil, nil, usageErrorf("label %q has no key: write KEY=VALUE to set a label, KEY- to remove one", arg)
			}
			set[k] = v
			continue
		}
		if k, ok := strings.CutSuffix(arg, "-"); ok && k != "" {
			remove = append(remove, k)
			continue
		}
		return nil, nil, usageErrorf("label %q: write KEY=VALUE to set a label, KEY- to remove one", arg)
	}
	return set, remove, nil
}

func newNodeLabelCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "label NODE KEY=VALUE... | KEY-...",
		Short: "Set or remove a node's operator labels",
		Long: `Set labels on a node with KEY=VALUE, or remove them with KEY-. Placement
constraints (node.labels.KEY==VALUE) and preferences read them.

These are the operator's labels: they are kept apart from the ones the
agent registered with (its --label flags) and win over them. An agent's
label cannot be removed here, only given another value.`,
		Example: `  berth node label node-1 zone=eu disk=ssd
  berth node label node-1 disk-`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, remove, err := parseLabelChanges(args[1:])
			if err != nil {
				return err
			}
			return updateNodes(cmd, o, args[:1], func(c *cluster, ref string) (string, error) {
				n, err := c.UpdateNode(cmd.Context(), &berthv1.UpdateNodeRequest{Node: ref, SetLabels: set, RemoveLabels: remove})
				if err != nil {
					return "", err
				}
				line := fmt.Sprintf("%s labels: %s", n.GetName(), labelsColumn(n.GetLabels()))
				if len(n.GetLabels()) == 0 {
					line = n.GetName() + " has no labels"
				}
				if ops := n.GetOperatorLabels(); len(ops) > 0 {
					line += " (set by operators: " + labelsColumn(ops) + ")"
				}
				return line, nil
			})
		},
	}
}
