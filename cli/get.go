package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/nodestate"
)

func newGetCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get apps|services|nodes|servers [NAME]",
		Short: "List apps, services, nodes or servers",
		Long: `List the apps or services of the namespace, the nodes of the cluster, or
the control plane's servers (and which one leads).

With NAME, list only that one: an app name, a service as APP/SERVICE (or an
app name to list its services), or a node name or ID.`,
		Example: `  # Apps and how many of their tasks run
  berth get apps

  # Services of one app, as YAML
  berth get services shop -o yaml

  # Nodes of the cluster
  berth get nodes

  # Control plane servers; the leader runs the orchestrator and the agents' sessions
  berth get servers

  # Services of one app, redrawn as they change (Ctrl-C stops)
  berth get services shop -w`,
		GroupID: groupApps,
	}
	cmd.AddCommand(newGetAppsCommand(o), newGetServicesCommand(o), newGetNodesCommand(o, "nodes", []string{"node", "no"}), newGetServersCommand(o))
	requireSubcommand(cmd)
	return cmd
}

// appRow is one app as "berth get apps" shows it.
type appRow struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Services  []string `json:"services"`
	Desired   uint64   `json:"desired"`
	Running   uint64   `json:"running"`
}

// appFilterKeys are the --filter keys of "berth get apps".
var appFilterKeys = filterKeys[appRow]{
	"name":      func(r appRow) []string { return []string{r.Name} },
	"namespace": func(r appRow) []string { return []string{r.Namespace} },
}

func newGetAppsCommand(o *rootOptions) *cobra.Command {
	var (
		out   *outputFormat
		watch *bool
		flt   *filters
	)
	cmd := &cobra.Command{
		Use:     "apps [NAME]",
		Aliases: []string{"app"},
		Short:   "List apps: their services and running/desired tasks",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				return c.show(ctx, cmd.OutOrStdout(), *out, *watch, "", func(ctx context.Context) (listing, error) {
					req := &berthv1.ListAppsRequest{Namespace: c.namespace, AllNamespaces: c.allNamespaces}
					if ns := flt.single("namespace"); ns != "" {
						req.Namespace, req.AllNamespaces = ns, false
					}
					resp, err := c.ListApps(ctx, req)
					if err != nil {
						return listing{}, fmt.Errorf("list apps: %w", err)
					}
					rows := []appRow{}
					for _, a := range resp.GetApps() {
						if len(args) == 1 && a.GetName() != args[0] {
							continue
						}
						services := a.GetServices()
						if services == nil {
							services = []string{}
						}
						rows = append(rows, appRow{Namespace: a.GetNamespace(), Name: a.GetName(), Services: services, Desired: a.GetDesiredTasks(), Running: a.GetRunningTasks()})
					}
					if len(args) == 1 && len(rows) == 0 {
						return listing{}, fmt.Errorf("no app %q in namespace %q", args[0], c.namespace)
					}
					rows = filterRows(rows, flt, appFilterKeys)
					slices.SortFunc(rows, func(a, b appRow) int {
						return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
					})
					return listing{rows: rows, key: rows, table: func(w io.Writer) {
						fmt.Fprintln(w, c.nsHeader()+"NAME\tSERVICES\tTASKS")
						for _, r := range rows {
							fmt.Fprintf(w, "%s%s\t%d\t%d/%d\n", c.nsCell(r.Namespace), r.Name, len(r.Services), r.Running, r.Desired)
						}
					}}, nil
				})
			})
		},
	}
	flt = addFilterFlag(cmd, appFilterKeys)
	out = addOutputFlag(cmd)
	watch = addWatchFlag(cmd)
	addAllNamespacesFlag(cmd, o)
	return cmd
}

// serviceRow is one service as "berth get services" shows it.
type serviceRow struct {
	ID        string `json:"id"`
	Namespace string `json:"namespace"`
	App       string `json:"app"`
	Name      string `json:"name"`
	Mode      string `json:"mode"`
	// Replicas is the number of tasks wanted (for global services, one per
	// eligible node); Running how many of them run.
	Replicas uint64 `json:"replicas"`
	Running  uint64 `json:"running"`
	Image    string `json:"image"`
	Ports    []port `json:"ports"`
	// ImageDigest is the digest the image was pinned to when applied.
	ImageDigest string `json:"imageDigest,omitempty"`

	labels map[string]string
}

// quietKey names the service as commands take it: APP/SERVICE.
func (r serviceRow) quietKey() string { return r.App + "/" + r.Name }

// serviceFilterKeys are the --filter keys of "berth get services".
var serviceFilterKeys = filterKeys[serviceRow]{
	"name":      func(r serviceRow) []string { return []string{r.Name, r.App + "/" + r.Name} },
	"app":       func(r serviceRow) []string { return []string{r.App} },
	"namespace": func(r serviceRow) []string { return []string{r.Namespace} },
	"mode":      func(r serviceRow) []string { return []string{r.Mode} },
	"label":     func(r serviceRow) []string { return labelValues(r.labels) },
}

func newGetServicesCommand(o *rootOptions) *cobra.Command {
	var (
		out   *outputFormat
		watch *bool
		flt   *filters
	)
	cmd := &cobra.Command{
		Use:     "services [APP | APP/SERVICE]",
		Aliases: []string{"service", "svc"},
		Short:   "List services: mode, running/desired replicas, image and ports",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var app, name string
			if len(args) == 1 {
				var err error
				if app, name, err = splitAppService(args[0]); err != nil {
					return err
				}
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				return c.show(ctx, cmd.OutOrStdout(), *out, *watch, app, func(ctx context.Context) (listing, error) {
					req := &berthv1.ListServicesRequest{Namespace: c.namespace, App: app, AllNamespaces: c.allNamespaces}
					if a := flt.single("app"); a != "" && app == "" {
						req.App = a
					}
					if ns := flt.single("namespace"); ns != "" {
						req.Namespace, req.AllNamespaces = ns, false
					}
					resp, err := c.ListServices(ctx, req)
					if err != nil {
						return listing{}, fmt.Errorf("list services: %w", err)
					}
					rows := []serviceRow{}
					for _, s := range resp.GetServices() {
						svc := s.GetService()
						if name != "" && svc.GetName() != name {
							continue
						}
						rows = append(rows, serviceRow{
							ID:          svc.GetMeta().GetId(),
							Namespace:   svc.GetNamespace(),
							App:         svc.GetApp(),
							Name:        svc.GetName(),
							Mode:        serviceModeWord(svc.GetSpec().GetMode()),
							Replicas:    s.GetDesiredTasks(),
							Running:     s.GetRunningTasks(),
							Image:       svc.GetSpec().GetImage(),
							Ports:       specPorts(svc.GetSpec().GetPorts()),
							labels:      svc.GetSpec().GetLabels(),
							ImageDigest: svc.GetSpec().GetImageDigest(),
						})
					}
					if len(args) == 1 && len(rows) == 0 {
						return listing{}, fmt.Errorf("no service %q in namespace %q", args[0], c.namespace)
					}
					rows = filterRows(rows, flt, serviceFilterKeys)
					slices.SortFunc(rows, func(a, b serviceRow) int {
						return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.App, b.App), cmp.Compare(a.Name, b.Name))
					})
					wide := *out == formatWide
					return listing{rows: rows, key: rows, table: func(w io.Writer) {
						extra := ""
						if wide {
							extra = "\tDIGEST\tID"
						}
						fmt.Fprintln(w, c.nsHeader()+"NAME\tMODE\tREPLICAS\tIMAGE\tPORTS"+extra)
						for _, r := range rows {
							if wide {
								extra = "\t" + cmp.Or(shortDigest(r.ImageDigest), "-") + "\t" + r.ID
							}
							fmt.Fprintf(w, "%s%s/%s\t%s\t%d/%d\t%s\t%s%s\n", c.nsCell(r.Namespace), r.App, r.Name, r.Mode, r.Running, r.Replicas, r.Image, portsColumn(r.Ports), extra)
						}
					}}, nil
				})
			})
		},
	}
	flt = addFilterFlag(cmd, serviceFilterKeys)
	out = addOutputFlag(cmd)
	watch = addWatchFlag(cmd)
	addAllNamespacesFlag(cmd, o)
	return cmd
}

// nodeRow is one node as "berth get nodes" shows it.
type nodeRow struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	Status       string            `json:"status"`
	Availability string            `json:"availability"`
	Address      string            `json:"address"`
	Version      string            `json:"version"`
	Labels       map[string]string `json:"labels"`
	// CPU is in cores, Memory in bytes.
	CPU           float64 `json:"cpu"`
	Memory        int64   `json:"memory"`
	LastHeartbeat string  `json:"lastHeartbeat"`
	Message       string  `json:"message,omitempty"`

	heartbeat string
	milliCPU  int64
	status    string // ready, unreachable or down, without conditions
	shortID   string // the ID column: whole with -o wide
}

// nodeFilterKeys are the --filter keys of "berth get nodes" and "berth
// node ls", checked on the rows (the request has no filter).
var nodeFilterKeys = filterKeys[nodeRow]{
	"name":         func(r nodeRow) []string { return []string{r.Name} },
	"id":           func(r nodeRow) []string { return []string{r.ID} },
	"status":       func(r nodeRow) []string { return []string{r.Status, r.status} },
	"availability": func(r nodeRow) []string { return []string{r.Availability} },
	"label":        func(r nodeRow) []string { return labelValues(r.Labels) },
}

func newGetNodesCommand(o *rootOptions, use string, aliases []string) *cobra.Command {
	var (
		out   *outputFormat
		watch *bool
		flt   *filters
	)
	cmd := &cobra.Command{
		Use:     use + " [NAME]",
		Aliases: aliases,
		Short:   "List nodes: status, availability, address, capacity and labels",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				return c.show(ctx, cmd.OutOrStdout(), *out, *watch, "", func(ctx context.Context) (listing, error) {
					resp, err := c.ListNodes(ctx, &berthv1.ListNodesRequest{})
					if err != nil {
						return listing{}, fmt.Errorf("list nodes: %w", err)
					}
					now := o.now()
					rows := []nodeRow{}
					for _, n := range resp.GetNodes() {
						id := n.GetMeta().GetId()
						if len(args) == 1 && n.GetName() != args[0] && !strings.HasPrefix(id, args[0]) {
							continue
						}
						labels := n.GetLabels()
						if labels == nil {
							labels = map[string]string{}
						}
						rows = append(rows, nodeRow{
							ID:            id,
							Name:          n.GetName(),
							Status:        cmp.Or(nodestate.Words(n), nodeStatusWord(n.GetStatus())),
							Availability:  availabilityWord(n.GetAvailability()),
							Address:       n.GetAddress(),
							Version:       n.GetAgentVersion(),
							Labels:        labels,
							CPU:           cores(n.GetCapacity().GetMilliCpus()),
							Memory:        n.GetCapacity().GetMemoryBytes(),
							LastHeartbeat: rfc3339(n.GetLastHeartbeat()),
							Message:       n.GetStatusMessage(),
							heartbeat:     heartbeatWords(now, n),
							milliCPU:      n.GetCapacity().GetMilliCpus(),
							status:        nodeStatusWord(n.GetStatus()),
						})
					}
					if len(args) == 1 && len(rows) == 0 {
						return listing{}, fmt.Errorf("no node %q; see `berth node ls`", args[0])
					}
					rows = filterRows(rows, flt, nodeFilterKeys)
					slices.SortFunc(rows, func(a, b nodeRow) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID)) })
					// Heartbeats change every few seconds: a watch redraws for
					// the rest only.
					key := slices.Clone(rows)
					for i := range key {
						key[i].LastHeartbeat = ""
					}
					wide := *out == formatWide
					return listing{rows: rows, key: key, table: func(w io.Writer) {
						if wide {
							// The whole ID, for scripts and other tools.
							for i := range rows {
								rows[i].shortID = rows[i].ID
							}
						}
						fmt.Fprintln(w, "ID\tNAME\tSTATUS\tAVAILABILITY\tADDRESS\tVERSION\tCPU\tMEMORY\tLABELS\tLAST HEARTBEAT\tMESSAGE")
						for _, r := range rows {
							fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cmp.Or(r.shortID, shortID(r.ID)), r.Name, r.Status, r.Availability,
								r.Address, r.Version, coresColumn(r.milliCPU), bytesColumn(r.Memory), labelsColumn(r.Labels), r.heartbeat, r.Message)
						}
					}}, nil
				})
			})
		},
	}
	flt = addFilterFlag(cmd, nodeFilterKeys)
	out = addOutputFlag(cmd)
	watch = addWatchFlag(cmd)
	return cmd
}

// labelsColumn shows labels as k=v pairs sorted by key.
func labelsColumn(labels map[string]string) string {
	keys := slices.Sorted(maps.Keys(labels))
	pairs := make([]string, len(keys))
	for i, k := range keys {
		pairs[i] = k + "=" + labels[k]
	}
	return strings.Join(pairs, ",")
}
