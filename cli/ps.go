package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// taskRow is one task as "berth ps" shows it.
type taskRow struct {
	ID        string `json:"id"`
	Namespace string `json:"namespace"`
	App       string `json:"app"`
	Service   string `json:"service"`
	Slot      uint64 `json:"slot"`
	Node      string `json:"node"`
	NodeID    string `json:"nodeId"`
	State     string `json:"state"`
	// Health is starting, healthy or unhealthy for tasks with a health
	// check, empty otherwise.
	Health       string `json:"health,omitempty"`
	DesiredState string `json:"desiredState"`
	// Since is when the task entered its current state (RFC 3339).
	Since    string `json:"since"`
	Error    string `json:"error"`
	Message  string `json:"message"`
	ExitCode int32  `json:"exitCode"`
	// OOMKilled says the kernel killed the container for going over its
	// memory limit.
	OOMKilled bool   `json:"oomKilled,omitempty"`
	Ports     []port `json:"ports"`
	// Addresses are the task's addresses, one per network:
	// "NETWORK:IP".
	Addresses []string `json:"addresses,omitempty"`

	labels     map[string]string
	image      string // -o wide: the image, with its pinned digest short
	since      string // table form, "12s ago"
	running    bool   // desired to run, for sorting current tasks first
	stateNanos int64
}

func newPsCommand(o *rootOptions) *cobra.Command {
	var (
		all   bool
		node  string
		out   *outputFormat
		watch *bool
		flt   *filters
	)
	cmd := &cobra.Command{
		Use:   "ps [APP[/SERVICE]]",
		Short: "List tasks (the containers of services)",
		Long: `List the tasks of the namespace, of one app, or of one service.

Each task is one container of a service: its slot (replica number), the node
it was placed on, its observed and desired state, and the ports it publishes.
A task that no node can take, or whose service waits for its depends_on,
stays pending; the ERROR column (and "message" in JSON) says why, such as
"waiting for db (healthy)" or "migrate failed (exit code 1)".
By default only tasks that are meant to run are listed; --all adds finished
and replaced ones. With -w the list is drawn again each time it changes.`,
		Example: `  # Tasks of every app in the namespace
  berth ps

  # Tasks of one service, including the ones it replaced
  berth ps shop/web --all

  # Tasks on one node, as JSON
  berth ps --node node-1 -o json

  # Keep the list on screen, redrawn as tasks change (Ctrl-C stops)
  berth ps shop -w

  # IDs of the failed tasks of one service, for a script
  berth ps --filter service=shop/web --filter state=failed -q`,
		GroupID: groupApps,
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &berthv1.ListTasksRequest{All: all}
			var err error
			if req.App, req.Service, err = optionalAppService(args); err != nil {
				return err
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				req.Namespace, req.AllNamespaces = c.namespace, c.allNamespaces
				var err error
				if req.NodeId, err = c.nodeFilter(ctx, node); err != nil {
					return err
				}
				if err := c.taskFilterRequest(ctx, flt, req); err != nil {
					return err
				}
				return c.show(ctx, cmd.OutOrStdout(), *out, *watch, req.App, func(ctx context.Context) (listing, error) {
					resp, err := c.ListTasks(ctx, req)
					if err != nil {
						return listing{}, fmt.Errorf("list tasks: %w", err)
					}
					names, err := c.nodeNames(ctx)
					if err != nil {
						return listing{}, err
					}
					rows := filterRows(taskRows(resp.GetTasks(), names, o.now()), flt, taskFilterKeys)
					wide := *out == formatWide
					return listing{rows: rows, key: rows, table: func(w io.Writer) { c.taskTable(w, rows, wide) }}, nil
				})
			})
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "include finished and replaced tasks")
	cmd.Flags().StringVar(&node, "node", "", "only tasks on this node (name or ID)")
	flt = addFilterFlag(cmd, taskFilterKeys)
	out = addOutputFlag(cmd)
	watch = addWatchFlag(cmd)
	addAllNamespacesFlag(cmd, o)
	return cmd
}

// taskFilterKeys are the --filter keys of "berth ps".
var taskFilterKeys = filterKeys[taskRow]{
	"name": func(r taskRow) []string {
		s := fmt.Sprintf("%s.%d", r.Service, r.Slot)
		return []string{s, r.App + "/" + s}
	},
	"app":           func(r taskRow) []string { return []string{r.App} },
	"service":       func(r taskRow) []string { return []string{r.Service, r.App + "/" + r.Service} },
	"node":          func(r taskRow) []string { return []string{r.Node, r.NodeID} },
	"state":         func(r taskRow) []string { return []string{r.State} },
	"desired-state": func(r taskRow) []string { return []string{r.DesiredState} },
	"namespace":     func(r taskRow) []string { return []string{r.Namespace} },
	"label":         func(r taskRow) []string { return labelValues(r.labels) },
}

// taskFilterRequest narrows req by the filters a request can carry (one
// app, one APP/SERVICE, one node, one namespace), so the server sends
// less; every filter is also checked on the rows. A state filter asks
// for finished tasks too.
func (c *cluster) taskFilterRequest(ctx context.Context, f *filters, req *berthv1.ListTasksRequest) error {
	if app := f.single("app"); app != "" && req.App == "" {
		req.App = app
	}
	if app, svc, ok := strings.Cut(f.single("service"), "/"); ok && req.Service == "" && (req.App == "" || req.App == app) {
		req.App, req.Service = app, svc
	}
	if ns := f.single("namespace"); ns != "" && !req.AllNamespaces {
		req.Namespace = ns
	}
	if n := f.single("node"); n != "" && req.NodeId == "" {
		// A node that does not exist matches nothing: the rows say so.
		if id, err := c.resolveNode(ctx, n); err == nil {
			req.NodeId = id
		}
	}
	if f.has("state") || f.has("desired-state") {
		req.All = true
	}
	return nil
}

// taskTable writes the table of "berth ps"; wide adds the addresses and
// the image.
func (c *cluster) taskTable(w io.Writer, rows []taskRow, wide bool) {
	addresses := ""
	if wide {
		addresses = "\tADDRESSES\tIMAGE"
	}
	fmt.Fprintln(w, c.nsHeader()+"ID\tSERVICE\tSLOT\tNODE\tSTATE\tDESIRED\tSINCE\tPORTS"+addresses+"\tERROR")
	for _, r := range rows {
		slot, node := "-", cmp.Or(r.Node, "-")
		if r.Slot > 0 {
			slot = fmt.Sprint(r.Slot)
		}
		if wide {
			addresses = "\t" + cmp.Or(strings.Join(r.Addresses, ","), "-") + "\t" + cmp.Or(r.image, "-")
		}
		fmt.Fprintf(w, "%s%s\t%s/%s\t%s\t%s\t%s\t%s\t%s\t%s%s\t%s\n",
			c.nsCell(r.Namespace), shortID(r.ID), r.App, r.Service, slot, node, r.stateColumn(), r.DesiredState,
			r.since, portsColumn(r.Ports), addresses, r.tableError())
	}
}

// imageColumn is the image of spec with the digest it was pinned to,
// short: "web:1@0123456789ab".
func imageColumn(spec *berthv1.ServiceSpec) string {
	img := spec.GetImage()
	if d := spec.GetImageDigest(); d != "" && !strings.Contains(img, "@") {
		img += "@" + shortDigest(d)
	}
	return img
}

// taskAddresses are t's addresses as "NETWORK:IP", in the order of its
// networks.
func taskAddresses(t *berthv1.Task) []string {
	var out []string
	for _, n := range t.GetNetworks() {
		ip, _, _ := strings.Cut(n.GetAddress(), "/")
		out = append(out, n.GetNetwork()+":"+ip)
	}
	return out
}

// tableError is the ERROR column: the error, or for a pending task the
// reason it is waiting (such as "no suitable node (...)" or "waiting for
// db (healthy)").
func (r taskRow) tableError() string {
	if r.Error != "" {
		return r.Error
	}
	if r.State == taskStateWord(berthv1.TaskState_TASK_STATE_PENDING) {
		return r.Message
	}
	return ""
}

// taskRows converts tasks to rows sorted by app, service and slot; within a
// slot, tasks meant to run come first, then the newest.
func taskRows(tasks []*berthv1.Task, nodeNames map[string]string, now time.Time) []taskRow {
	rows := make([]taskRow, 0, len(tasks))
	for _, t := range tasks {
		st := t.GetStatus()
		ports := bindingPorts(st.GetPorts())
		if len(ports) == 0 {
			ports = specPorts(t.GetSpec().GetPorts())
		}
		rows = append(rows, taskRow{
			ID:           t.GetMeta().GetId(),
			Namespace:    t.GetNamespace(),
			App:          t.GetApp(),
			Service:      t.GetService(),
			Slot:         t.GetSlot(),
			Node:         nodeNames[t.GetNodeId()],
			NodeID:       t.GetNodeId(),
			State:        taskStateWord(st.GetState()),
			Health:       enumWord(st.GetHealth().String(), "HEALTH_"),
			DesiredState: taskStateWord(t.GetDesiredState()),
			Since:        rfc3339(st.GetTimestamp()),
			Error:        st.GetErr(),
			Message:      st.GetMessage(),
			ExitCode:     st.GetExitCode(),
			OOMKilled:    st.GetOomKilled(),
			Ports:        ports,
			Addresses:    taskAddresses(t),
			labels:       t.GetSpec().GetLabels(),
			image:        imageColumn(t.GetSpec()),
			since:        ago(now, st.GetTimestamp()),
			running:      t.GetDesiredState() == berthv1.TaskState_TASK_STATE_RUNNING,
			stateNanos:   st.GetTimestamp().AsTime().UnixNano(),
		})
	}
	slices.SortFunc(rows, func(a, b taskRow) int {
		return cmp.Or(
			cmp.Compare(a.App, b.App),
			cmp.Compare(a.Service, b.Service),
			cmp.Compare(a.Slot, b.Slot),
			cmp.Compare(a.Node, b.Node),
			compareBool(b.running, a.running),
			cmp.Compare(b.stateNanos, a.stateNanos),
			cmp.Compare(a.ID, b.ID),
		)
	})
	return rows
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	default:
		return 1
	}
}

// splitAppService parses APP or APP/SERVICE.
func splitAppService(s string) (app, service string, err error) {
	app, service, _ = strings.Cut(s, "/")
	if app == "" || strings.Contains(service, "/") || (strings.Contains(s, "/") && service == "") {
		return "", "", usageErrorf("%q is not APP or APP/SERVICE", s)
	}
	return app, service, nil
}

// optionalAppService parses the optional [APP[/SERVICE]] argument of a
// command that otherwise covers the whole namespace.
func optionalAppService(args []string) (app, service string, err error) {
	if len(args) == 0 {
		return "", "", nil
	}
	return splitAppService(args[0])
}

// stateColumn is the state with why it ended, for a container killed for
// memory ("failed (oom)"), or else with the health, when there is a check
// ("running (healthy)").
func (r taskRow) stateColumn() string {
	switch {
	case r.OOMKilled:
		return r.State + " (oom)"
	case r.Health != "":
		return r.State + " (" + r.Health + ")"
	case r.State == taskStateWord(berthv1.TaskState_TASK_STATE_PREPARING) && strings.HasPrefix(r.Message, "pulling"):
		// "pulling 40% (12.0 MiB of 30.0 MiB) from peer beta" shows as
		// "preparing (pulling 40%)".
		pulling, _, _ := strings.Cut(r.Message, " (")
		pulling, _, _ = strings.Cut(pulling, " from ")
		return r.State + " (" + pulling + ")"
	default:
		return r.State
	}
}
