package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// eventRow is one event as "berth events" shows it.
type eventRow struct {
	Time string `json:"time"`
	// Namespace is the namespace of the event's object; empty for nodes
	// and the cluster.
	Namespace string `json:"namespace,omitempty"`
	Kind      string `json:"kind"`
	ObjectID  string `json:"objectId"`
	// Object names the object for people: "shop/web.2" for a task, a
	// node's name, "shop" for an app.
	Object     string            `json:"object"`
	Action     string            `json:"action"`
	Message    string            `json:"message"`
	Attributes map[string]string `json:"attributes"`

	at time.Time
}

func newEventsCommand(o *rootOptions) *cobra.Command {
	var (
		node   string
		since  string
		limit  uint32
		follow bool
		out    *outputFormat
		flt    *filters
	)
	cmd := &cobra.Command{
		Use:   "events [APP[/SERVICE]]",
		Short: "List what happened in the cluster, and why",
		Long: `List recent events, oldest first and newest last: failures with their exit
code, health changes, replacements and delayed or abandoned restarts, node
verdicts (ready, unreachable, down), applies and removals.

With APP, only the events of that app, its services and their tasks; with
APP/SERVICE, only those of one service. --node keeps the events of a node
and of the tasks that ran on it. The cluster keeps about an hour of events.

With -f, the recent events are followed by each new one as it happens,
until interrupted (Ctrl-C); -o json then prints one JSON object a line.`,
		Example: `  # Everything recent
  berth events

  # Why the tasks of one service were replaced, over the last 10 minutes
  berth events shop/web --since 10m

  # What happened on one node, as JSON
  berth events --node node-1 -o json

  # Watch one app's events as they happen
  berth events -f shop

  # Only the failures of tasks on one node
  berth events --filter node=node-1 --filter type=task --filter action=failed`,
		GroupID: groupApps,
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &berthv1.ListEventsRequest{Limit: limit}
			var err error
			if req.App, req.Service, err = optionalAppService(args); err != nil {
				return err
			}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				req.Since = timestamppb.New(t)
			}
			nsFilter, err := eventFilterRequest(flt, req, &node)
			if err != nil {
				return err
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				req.Namespace, req.AllNamespaces = c.namespace, c.allNamespaces
				if nsFilter != "" {
					req.Namespace, req.AllNamespaces = nsFilter, false
				}
				var err error
				if req.NodeId, err = c.nodeFilter(ctx, node); err != nil {
					return err
				}
				if follow {
					return c.followEvents(ctx, req, flt, cmd.OutOrStdout(), *out)
				}
				rows, err := c.eventRows(ctx, req)
				if err != nil {
					return err
				}
				rows = filterRows(rows, flt, eventFilterKeys)
				return printList(cmd.OutOrStdout(), *out, rows, func(w io.Writer) {
					fmt.Fprintln(w, c.nsHeader()+"TIME\tKIND\tOBJECT\tACTION\tMESSAGE")
					for _, r := range rows {
						fmt.Fprintf(w, "%s%s\t%s\t%s\t%s\t%s\n", c.nsCell(orDash(r.Namespace)), r.at.Local().Format(time.DateTime), r.Kind, r.Object, r.Action, r.Message)
					}
				})
			})
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "only events of this node (name or ID) and of the tasks on it")
	cmd.Flags().StringVar(&since, "since", "", "only events since this long ago (10m, 1h30m) or this time (RFC 3339)")
	cmd.Flags().Uint32Var(&limit, "limit", 100, "most recent events to show")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep showing new events as they happen, until interrupted")
	flt = addFilterFlag(cmd, eventFilterKeys)
	out = addOutputFlag(cmd)
	addAllNamespacesFlag(cmd, o)
	return cmd
}

// eventFilterKeys are the --filter keys of "berth events". app, service,
// node and namespace are asked of the server (eventFilterRequest); these
// functions are for the keys checked on the rows.
var eventFilterKeys = filterKeys[eventRow]{
	"type":      func(r eventRow) []string { return []string{r.Kind} },
	"kind":      func(r eventRow) []string { return []string{r.Kind} },
	"action":    func(r eventRow) []string { return []string{r.Action} },
	"event":     func(r eventRow) []string { return []string{r.Action} },
	"name":      func(r eventRow) []string { return []string{r.Object, r.ObjectID} },
	"app":       func(eventRow) []string { return nil },
	"service":   func(eventRow) []string { return nil },
	"node":      func(eventRow) []string { return nil },
	"namespace": func(eventRow) []string { return nil },
}

// eventFilterRequest moves the filters the server applies (one app, one
// service as APP/SERVICE, one node) from f into req and node, and takes
// them out of f; it returns the namespace filter, which the caller puts
// in the request once it knows whether -A was given.
func eventFilterRequest(f *filters, req *berthv1.ListEventsRequest, node *string) (namespace string, err error) {
	for _, key := range []string{"app", "service", "node", "namespace"} {
		if len(f.values[key]) > 1 {
			return "", usageErrorf("--filter %s= is given %d times: events take one %s", key, len(f.values[key]), key)
		}
	}
	if app := f.single("app"); app != "" {
		if req.App != "" && req.App != app {
			return "", usageErrorf("--filter app=%s and the argument %s name different apps", app, req.App)
		}
		req.App = app
	}
	if svc := f.single("service"); svc != "" {
		app, name, ok := strings.Cut(svc, "/")
		if !ok || app == "" || name == "" {
			return "", usageErrorf("--filter service=%s: name the service as APP/SERVICE", svc)
		}
		if (req.App != "" && req.App != app) || (req.Service != "" && req.Service != name) {
			return "", usageErrorf("--filter service=%s and the argument name different services", svc)
		}
		req.App, req.Service = app, name
	}
	if n := f.single("node"); n != "" {
		if *node != "" && *node != n {
			return "", usageErrorf("--filter node=%s and --node %s name different nodes", n, *node)
		}
		*node = n
	}
	ns := f.single("namespace")
	for _, key := range []string{"app", "service", "node", "namespace"} {
		delete(f.values, key)
	}
	return ns, nil
}

// eventNamespace is the namespace of an event's object, "" for none.
func eventNamespace(ev *berthv1.Event) string {
	if ns := ev.GetAttributes()["namespace"]; ns != "" {
		return ns
	}
	if k := ev.GetKind(); k == "app" || k == "service" {
		ns, _, _ := strings.Cut(ev.GetObjectId(), "/")
		return ns
	}
	return ""
}

// parseSince reads --since: a duration before now, or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, usageErrorf("--since %s: give a positive duration, such as 10m", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, usageErrorf("--since %q is neither a duration (10m, 1h30m) nor a time (2006-01-02T15:04:05Z)", s)
}

// eventRows asks for the events req selects and names their objects.
func (c *cluster) eventRows(ctx context.Context, req *berthv1.ListEventsRequest) ([]eventRow, error) {
	resp, err := c.ListEvents(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	names, err := c.nodeNames(ctx)
	if err != nil {
		return nil, err
	}
	rows := make([]eventRow, 0, len(resp.GetEvents()))
	for _, ev := range resp.GetEvents() {
		rows = append(rows, newEventRow(ev, c.namespace, names))
	}
	return rows, nil
}

// newEventRow is ev as a row, its object named with nodeNames.
func newEventRow(ev *berthv1.Event, namespace string, nodeNames map[string]string) eventRow {
	attrs := maps.Clone(ev.GetAttributes())
	if attrs == nil {
		attrs = map[string]string{}
	}
	return eventRow{
		Time:       rfc3339(ev.GetAt()),
		Namespace:  eventNamespace(ev),
		Kind:       ev.GetKind(),
		ObjectID:   ev.GetObjectId(),
		Object:     eventObject(ev, namespace, nodeNames),
		Action:     ev.GetAction(),
		Message:    ev.GetMessage(),
		Attributes: attrs,
		at:         ev.GetAt().AsTime(),
	}
}

// eventObject names an event's object for people: a task as
// APP/SERVICE.SLOT, a node by name, an app by name (with its namespace
// when it is not the one in use).
func eventObject(ev *berthv1.Event, namespace string, nodeNames map[string]string) string {
	attrs := ev.GetAttributes()
	switch ev.GetKind() {
	case "task":
		if attrs["service"] == "" {
			return shortID(ev.GetObjectId())
		}
		name := attrs["app"] + "/" + attrs["service"]
		if slot := attrs["slot"]; slot != "" {
			name += "." + slot
		}
		return name
	case "node":
		return cmp.Or(nodeNames[ev.GetObjectId()], shortID(ev.GetObjectId()))
	case "app":
		if app, ok := strings.CutPrefix(ev.GetObjectId(), namespace+"/"); ok {
			return app
		}
	}
	return ev.GetObjectId()
}
