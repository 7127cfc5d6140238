package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/nodestate"
	"github.com/berthproject/berth/api/taskstate"
)

// describeEventLimit is how many of an object's recent events describe
// shows.
const describeEventLimit = 20

func newDescribeCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "describe APP/SERVICE | service APP/SERVICE | task ID | node NAME | image IMAGE",
		Short: "Show one service, task or node in detail, with its recent events",
		Long: `Show one object in detail: its spec and status, its tasks, and at the end its
recent events, which say why it is as it is (failures with their exit
codes, health changes, replacements, node verdicts).

A service is named APP/SERVICE, a task by its ID (or a unique prefix of it,
as "berth ps" shows it), a node by its name or ID.`,
		Example: `  # A service: spec summary, tasks and why they were replaced
  berth describe shop/web

  # One task, by the ID "berth ps" shows
  berth describe task 3kq2x9a1b4cd

  # A node: status, capacity, its tasks and verdicts
  berth describe node node-1`,
		GroupID: groupApps,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return describeService(cmd, o, args[0])
		},
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:     "service APP/SERVICE",
			Aliases: []string{"svc"},
			Short:   "Show a service: spec summary, tasks and recent events",
			Args:    cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return describeService(cmd, o, args[0])
			},
		},
		&cobra.Command{
			Use:   "task ID",
			Short: "Show a task: state, history, container and recent events",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return describeTask(cmd, o, args[0])
			},
		},
		&cobra.Command{
			Use:   "image IMAGE|DIGEST",
			Short: "Show an image's stored scan: OS, packages and vulnerability findings",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return describeImage(cmd, o, args[0])
			},
		},
		&cobra.Command{
			Use:   "node NAME",
			Short: "Show a node: status, capacity, tasks and recent events",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return describeNode(cmd, o, args[0])
			},
		},
	)
	return cmd
}

func describeService(cmd *cobra.Command, o *rootOptions, ref string) error {
	app, name, err := splitAppService(ref)
	if err != nil {
		return err
	}
	if name == "" {
		return usageErrorf("%q names an app: describe one of its services as %s/SERVICE (`berth get services %s` lists them)", ref, app, app)
	}
	return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
		resp, err := c.ListServices(ctx, &berthv1.ListServicesRequest{Namespace: c.namespace, App: app})
		if err != nil {
			return fmt.Errorf("list services: %w", err)
		}
		var sum *berthv1.ServiceSummary
		for _, s := range resp.GetServices() {
			if s.GetService().GetName() == name {
				sum = s
			}
		}
		if sum == nil {
			return fmt.Errorf("no service %q in namespace %q; `berth get services` lists them", ref, c.namespace)
		}
		tasks, err := c.ListTasks(ctx, &berthv1.ListTasksRequest{Namespace: c.namespace, App: app, Service: name, All: true})
		if err != nil {
			return fmt.Errorf("list tasks: %w", err)
		}
		names, err := c.nodeNames(ctx)
		if err != nil {
			return err
		}
		events, err := c.eventRows(ctx, &berthv1.ListEventsRequest{Namespace: c.namespace, App: app, Service: name, Limit: describeEventLimit})
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		svc, spec := sum.GetService(), sum.GetService().GetSpec()
		fields(w,
			"Name", app+"/"+name,
			"Namespace", svc.GetNamespace(),
			"ID", svc.GetMeta().GetId(),
			"Image", spec.GetImage(),
			"Command", strings.Join(append(append([]string{}, spec.GetEntrypoint()...), spec.GetCommand()...), " "),
			"Mode", serviceModeWord(spec.GetMode()),
			"Replicas", fmt.Sprintf("%d running / %d desired", sum.GetRunningTasks(), sum.GetDesiredTasks()),
			"Ports", portsColumn(specPorts(spec.GetPorts())),
			"Restart policy", restartPolicyText(spec.GetRestartPolicy()),
			"Health check", healthCheckText(spec.GetHealthcheck()),
			"Depends on", dependsText(spec.GetDependsOn()),
			"Placement", placementText(spec),
			"Resources", resourcesText(spec),
			"Update config", updateConfigText(spec.GetUpdateConfig()),
			"Rollback config", updateConfigText(spec.GetRollbackConfig()),
			"Spec version", fmt.Sprintf("%d (%s)", svc.GetSpecVersion(), cmp.Or(svc.GetChangeCause(), "apply")),
			"Rollout", rolloutText(svc),
			"Rebalance", rebalanceText(svc),
			"Updated", rfc3339(svc.GetMeta().GetUpdatedAt()),
		)
		printServiceScan(ctx, w, c, spec)
		now := o.now()
		printServiceNetworks(w, svc, tasks.GetTasks())
		printServiceStorage(w, spec)
		section(w, "Tasks", len(tasks.GetTasks()), func(tw io.Writer) {
			fmt.Fprintln(tw, "  ID\tSLOT\tNODE\tSTATE\tDESIRED\tSINCE\tERROR")
			for _, r := range taskRows(tasks.GetTasks(), names, now) {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", shortID(r.ID), slotText(r.Slot), cmp.Or(r.Node, "-"),
					r.stateColumn(), r.DesiredState, r.since, r.tableError())
			}
		})
		printEvents(w, events, now)
		return nil
	})
}

func describeTask(cmd *cobra.Command, o *rootOptions, ref string) error {
	return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
		resp, err := c.ListTasks(ctx, &berthv1.ListTasksRequest{Namespace: c.namespace, All: true})
		if err != nil {
			return fmt.Errorf("list tasks: %w", err)
		}
		var found []*berthv1.Task
		for _, t := range resp.GetTasks() {
			id := t.GetMeta().GetId()
			if id == ref {
				found = []*berthv1.Task{t}
				break
			}
			if len(ref) >= 3 && strings.HasPrefix(id, ref) {
				found = append(found, t)
			}
		}
		switch len(found) {
		case 0:
			return fmt.Errorf("no task %q in namespace %q; `berth ps --all` lists the tasks with their IDs", ref, c.namespace)
		case 1:
		default:
			return fmt.Errorf("task ID prefix %q matches %d tasks; give more of the ID", ref, len(found))
		}
		t := found[0]
		names, err := c.nodeNames(ctx)
		if err != nil {
			return err
		}
		events, err := c.eventRows(ctx, &berthv1.ListEventsRequest{TaskId: t.GetMeta().GetId(), Limit: describeEventLimit})
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		now := o.now()
		r := taskRows([]*berthv1.Task{t}, names, now)[0]
		st := t.GetStatus()
		node := r.Node
		if t.GetNodeId() != "" {
			node = fmt.Sprintf("%s (%s)", cmp.Or(r.Node, "?"), t.GetNodeId())
		}
		exit := ""
		if taskstate.Terminal(st.GetState()) {
			exit = fmt.Sprint(st.GetExitCode())
		}
		fields(w,
			"ID", t.GetMeta().GetId(),
			"Service", t.GetApp()+"/"+t.GetService(),
			"Namespace", t.GetNamespace(),
			"Slot", slotText(t.GetSlot()),
			"Node", node,
			"State", r.stateColumn()+", since "+r.since,
			"Desired state", r.DesiredState,
			"Message", st.GetMessage(),
			"Error", st.GetErr(),
			"Exit code", exit,
			"Restarts", fmt.Sprintf("%d failures in a row before this task", t.GetRestarts()),
			"Spec version", fmt.Sprint(t.GetSpecVersion()),
			"Image", t.GetSpec().GetImage(),
			"Container", st.GetContainerId(),
			"Address", st.GetAddress(),
			"Ports", portsColumn(r.Ports),
			"Created", rfc3339(t.GetMeta().GetCreatedAt()),
		)
		section(w, "History", len(t.GetHistory()), func(tw io.Writer) {
			fmt.Fprintln(tw, "  STATE\tAT")
			for _, h := range t.GetHistory() {
				fmt.Fprintf(tw, "  %s\t%s\n", taskStateWord(h.GetState()), h.GetAt().AsTime().Local().Format(time.DateTime+".000"))
			}
		})
		printEvents(w, events, now)
		return nil
	})
}

func describeNode(cmd *cobra.Command, o *rootOptions, ref string) error {
	return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
		id, err := c.resolveNode(ctx, ref)
		if err != nil {
			return err
		}
		nodes, err := c.ListNodes(ctx, &berthv1.ListNodesRequest{})
		if err != nil {
			return fmt.Errorf("list nodes: %w", err)
		}
		var n *berthv1.Node
		names := map[string]string{}
		for _, x := range nodes.GetNodes() {
			names[x.GetMeta().GetId()] = x.GetName()
			if x.GetMeta().GetId() == id {
				n = x
			}
		}
		if n == nil {
			return fmt.Errorf("node %q left the cluster; see `berth node ls`", ref)
		}
		// Tasks of every namespace run on a node.
		tasks, err := c.ListTasks(ctx, &berthv1.ListTasksRequest{NodeId: id})
		if err != nil {
			return fmt.Errorf("list tasks: %w", err)
		}
		events, err := c.eventRows(ctx, &berthv1.ListEventsRequest{NodeId: id, Limit: describeEventLimit})
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		now := o.now()
		status := cmp.Or(nodestate.Words(n), nodeStatusWord(n.GetStatus()))
		if since, notReady := nodestate.NotReadySince(n); notReady {
			status += ", since " + ago(now, timestamppb.New(since))
		} else if since := n.GetStatusSince(); since != nil {
			status += ", since " + ago(now, since)
		}
		platform := strings.Trim(n.GetPlatform().GetOs()+"/"+n.GetPlatform().GetArchitecture(), "/")
		fields(w,
			"Name", n.GetName(),
			"ID", id,
			"Status", status,
			"Status message", n.GetStatusMessage(),
			"Availability", availabilityWord(n.GetAvailability()),
			"Address", n.GetAddress(),
			"Hostname", n.GetHostname(),
			"Platform", platform,
			"Labels", labelsColumn(n.GetLabels()),
			"CPU", coresColumn(n.GetCapacity().GetMilliCpus()),
			"Memory", bytesColumn(n.GetCapacity().GetMemoryBytes()),
			"Subnet", n.GetSubnet(),
			"Agent version", n.GetAgentVersion(),
			"Last heartbeat", heartbeatWords(now, n),
			"Images", fmt.Sprint(len(n.GetImages())),
		)
		section(w, "Conditions", len(n.GetConditions()), func(tw io.Writer) {
			fmt.Fprintln(tw, "  TYPE\tOK\tSINCE\tMESSAGE")
			for _, c := range n.GetConditions() {
				ok := "yes"
				if !c.GetOk() {
					ok = "NO"
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", c.GetType(), ok, ago(now, c.GetSince()), cmp.Or(c.GetMessage(), "-"))
			}
		})
		section(w, "Tasks", len(tasks.GetTasks()), func(tw io.Writer) {
			fmt.Fprintln(tw, "  ID\tSERVICE\tSLOT\tSTATE\tDESIRED\tSINCE\tERROR")
			for _, r := range taskRows(tasks.GetTasks(), names, now) {
				fmt.Fprintf(tw, "  %s\t%s/%s\t%s\t%s\t%s\t%s\t%s\n", shortID(r.ID), r.App, r.Service, slotText(r.Slot),
					r.stateColumn(), r.DesiredState, r.since, r.tableError())
			}
		})
		printEvents(w, events, now)
		return nil
	})
}

// fields writes "Key:  value" lines, aligned; empty values show as "-".
// kv alternates keys and values.
func fields(w io.Writer, kv ...string) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[i], cmp.Or(kv[i+1], "-"))
	}
	tw.Flush()
}

// section writes a titled, indented table, or "Title: <none>" when it has
// no rows.
func section(w io.Writer, title string, rows int, table func(tw io.Writer)) {
	if rows == 0 {
		fmt.Fprintf(w, "%s:\t<none>\n", title)
		return
	}
	fmt.Fprintf(w, "%s:\n", title)
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	table(tw)
	tw.Flush()
}

// printEvents is the Events section that ends every description, newest
// last.
func printEvents(w io.Writer, events []eventRow, now time.Time) {
	section(w, "Events", len(events), func(tw io.Writer) {
		fmt.Fprintln(tw, "  AGE\tOBJECT\tACTION\tMESSAGE")
		for _, e := range events {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", ago(now, timestamppb.New(e.at)), e.Object, e.Action, e.Message)
		}
	})
}

func slotText(slot uint64) string {
	if slot == 0 {
		return "-"
	}
	return fmt.Sprint(slot)
}

// restartPolicyText sums up a restart policy: "any, delay 5s, at most 3
// attempts in 1m0s".
func restartPolicyText(p *berthv1.RestartPolicy) string {
	if p == nil {
		return ""
	}
	parts := []string{cmp.Or(enumWord(p.GetCondition().String(), "RESTART_CONDITION_"), "any")}
	if d := p.GetDelay(); d != nil {
		parts = append(parts, "delay "+durationText(d))
	} else {
		parts = append(parts, "growing backoff")
	}
	if m := p.GetMaxAttempts(); m > 0 {
		attempts := fmt.Sprintf("at most %d attempts", m)
		if w := p.GetWindow(); w.AsDuration() > 0 {
			attempts += " in " + durationText(w)
		}
		parts = append(parts, attempts)
	}
	return strings.Join(parts, ", ")
}

// healthCheckText sums up a health check: "CMD-SHELL curl -f localhost,
// every 5s, 3 retries".
func healthCheckText(h *berthv1.HealthCheck) string {
	switch {
	case h == nil:
		return "the image's, if it has one"
	case h.GetDisable():
		return "disabled"
	}
	var probe string
	switch {
	case len(h.GetTest()) > 0:
		probe = strings.Join(h.GetTest(), " ")
	case h.GetHttpPort() != 0:
		probe = fmt.Sprintf("HTTP GET :%d%s", h.GetHttpPort(), h.GetHttpPath())
	case h.GetTcpPort() != 0:
		probe = fmt.Sprintf("TCP :%d", h.GetTcpPort())
	default:
		probe = "the image's"
	}
	parts := []string{probe}
	if i := h.GetInterval(); i != nil {
		parts = append(parts, "every "+durationText(i))
	}
	if r := h.GetRetries(); r > 0 {
		parts = append(parts, fmt.Sprintf("%d retries", r))
	}
	return strings.Join(parts, ", ")
}

// dependsText lists a service's dependencies: "db (healthy), migrate
// (completed-successfully)".
func dependsText(deps []*berthv1.Dependency) string {
	parts := make([]string, len(deps))
	for i, d := range deps {
		parts[i] = fmt.Sprintf("%s (%s)", d.GetService(), cmp.Or(enumWord(d.GetCondition().String(), "DEPENDENCY_CONDITION_"), "started"))
	}
	return strings.Join(parts, ", ")
}

func durationText(d *durationpb.Duration) string { return d.AsDuration().String() }

// printServiceNetworks is the Networks section of a service: each network
// with the service's virtual IP on it, and the endpoints, the addresses of
// its tasks there that have not ended, ready when they take traffic.
func printServiceNetworks(w io.Writer, svc *berthv1.Service, tasks []*berthv1.Task) {
	nets := svc.GetSpec().GetNetworks()
	section(w, "Networks", len(nets), func(tw io.Writer) {
		fmt.Fprintln(tw, "  NETWORK\tVIRTUAL IP\tENDPOINTS")
		for _, n := range nets {
			vip := "-"
			if svc.GetSpec().GetEndpointMode() == berthv1.EndpointMode_ENDPOINT_MODE_DNSRR {
				vip = "none (dnsrr)"
			}
			for _, v := range svc.GetEndpoint().GetVirtualIps() {
				if v.GetNetwork() == n.GetNetwork() {
					vip = v.GetAddress()
				}
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", n.GetNetwork(), vip, cmp.Or(strings.Join(endpoints(n.GetNetwork(), tasks), ", "), "-"))
		}
	})
}

// endpoints are the addresses on network of the tasks that have not
// ended, in address order: "10.0.1.4 (ready)".
func endpoints(network string, tasks []*berthv1.Task) []string {
	type endpoint struct {
		addr  netip.Addr
		ready bool
	}
	var eps []endpoint
	for _, t := range tasks {
		if taskstate.Terminal(t.GetStatus().GetState()) {
			continue
		}
		for _, tn := range t.GetNetworks() {
			if p, err := netip.ParsePrefix(tn.GetAddress()); err == nil && tn.GetNetwork() == network {
				eps = append(eps, endpoint{p.Addr(), taskstate.InService(t)})
			}
		}
	}
	slices.SortFunc(eps, func(a, b endpoint) int { return a.addr.Compare(b.addr) })
	out := make([]string, len(eps))
	for i, e := range eps {
		word := "not ready"
		if e.ready {
			word = "ready"
		}
		out[i] = e.addr.String() + " (" + word + ")"
	}
	return out
}
