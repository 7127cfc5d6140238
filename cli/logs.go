package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func newLogsCommand(o *rootOptions) *cobra.Command {
	var (
		follow     bool
		tail       string
		since      string
		until      string
		timestamps bool
	)
	cmd := &cobra.Command{
		Use:   "logs APP | APP/SERVICE[.SLOT] | TASK-ID",
		Short: "Show the output of an app's, a service's or a task's containers",
		Long: `Show what the containers of a whole app, of a service, of one slot of it,
or of one task wrote to stdout and stderr. Lines the container wrote to
stdout go to stdout, lines it wrote to stderr go to stderr. When several
tasks are shown (an app's services, a service's replicas), each line
starts with the task it came from: "service.slot@node | ", and the tasks'
lines are interleaved as they arrive. A name without "/" is an app when
the namespace has one by that name, else a task ID prefix.

Each node keeps a container's output in Docker's json-file shape, each
line with its stream and the time it was written, rotated by size (see
logging: in Compose files and berth cluster settings --log-max-size); so
the oldest lines of a chatty container are gone once its files are full.

With -f, following a service or an app also follows the tasks that start
after the command began, such as the replacement of a failed one: their
output joins the stream as they start. --since and --until keep the lines
written in that span, by each line's time; --tail keeps the last N lines of
each task (after --since and --until). --timestamps starts each line with
its time, "-" for output of containers started before Berth kept times.`,
		Example: `  # Everything the web service's tasks wrote so far
  berth logs shop/web

  # Follow replica 2, starting from its last 20 lines
  berth logs shop/web.2 -f --tail 20

  # One task, by a prefix of its ID (see berth ps)
  berth logs 3f9a2c

  # The last ten minutes, with times, and what comes next
  berth logs shop/web -f --since 10m --timestamps

  # Every service of the app, up to five minutes ago
  berth logs shop --until 5m`,
		GroupID: groupApps,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := parseTail(tail)
			if err != nil {
				return err
			}
			now := time.Now()
			sinceTS, err := parseLogTime("--since", since, now)
			if err != nil {
				return err
			}
			untilTS, err := parseLogTime("--until", until, now)
			if err != nil {
				return err
			}
			if sinceTS != nil && untilTS != nil && untilTS.AsTime().Before(sinceTS.AsTime()) {
				return usageErrorf("--until %s is before --since %s: no line can be in between", until, since)
			}
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				req := &berthv1.LogsRequest{Namespace: c.namespace, Follow: follow, Tail: n, Since: sinceTS, Until: untilTS}
				tasks, err := logsTarget(cmd, c, args[0], req)
				if err != nil {
					return err
				}
				names, err := c.nodeNames(ctx)
				if err != nil {
					return err
				}
				stream, err := c.Logs(ctx, req)
				if err != nil {
					return fmt.Errorf("logs of %s: %w", args[0], err)
				}
				// Following a service, replacements may join: prefix its
				// lines even when one task runs now.
				prefixed := len(tasks) > 1 || (follow && req.TaskId == "") || req.Service == ""
				p := logPrinter{stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr(), nodeNames: names, prefixed: prefixed, timestamps: timestamps}
				for {
					e, err := stream.Recv()
					if errors.Is(err, io.EOF) || isCanceled(ctx, err) {
						return nil
					}
					if err != nil {
						return fmt.Errorf("logs of %s: %w", args[0], err)
					}
					p.print(e)
				}
			})
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming new output until interrupted")
	cmd.Flags().StringVar(&tail, "tail", "all", `number of lines to show from the end of each task's output, or "all"`)
	cmd.Flags().StringVar(&since, "since", "", "only lines written since this long ago (10m, 1h30m) or this time (RFC 3339)")
	cmd.Flags().StringVar(&until, "until", "", "only lines written until this long ago (10m, 1h30m) or this time (RFC 3339)")
	cmd.Flags().BoolVarP(&timestamps, "timestamps", "t", false, "start each line with the time it was written (RFC 3339)")
	return cmd
}

func parseTail(s string) (int64, error) {
	if s == "all" || s == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, usageErrorf("--tail %q is not a number of lines or \"all\": give --tail 100, or --tail all", s)
	}
	return n, nil
}

// parseLogTime reads --since or --until: a duration back from now or an
// RFC 3339 time; nil when s is empty.
func parseLogTime(flag, s string, now time.Time) (*timestamppb.Timestamp, error) {
	if s == "" {
		return nil, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return nil, usageErrorf("%s %s: give a positive duration back from now, such as 10m", flag, s)
		}
		return timestamppb.New(now.Add(-d)), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, usageErrorf("%s %q is neither a duration (10m, 1h30m) nor a time (2006-01-02T15:04:05Z)", flag, s)
	}
	return timestamppb.New(t), nil
}

// logsTarget is logTarget that also takes a whole app: a name without
// "/" is an app when the namespace has tasks of one by that name (an
// app's name wins over a task ID prefix).
func logsTarget(cmd *cobra.Command, c *cluster, ref string, req *berthv1.LogsRequest) ([]*berthv1.Task, error) {
	if !strings.Contains(ref, "/") {
		apps, err := c.ListTasks(cmd.Context(), &berthv1.ListTasksRequest{Namespace: c.namespace, App: ref, All: true})
		if err != nil {
			return nil, fmt.Errorf("list tasks: %w", err)
		}
		if len(apps.GetTasks()) > 0 {
			req.App = ref
			return apps.GetTasks(), nil
		}
	}
	return logTarget(cmd, c, ref, req)
}

// logTarget fills req from APP/SERVICE, APP/SERVICE.SLOT or a task ID
// prefix, and returns the tasks whose output will be shown.
func logTarget(cmd *cobra.Command, c *cluster, ref string, req *berthv1.LogsRequest) ([]*berthv1.Task, error) {
	ctx := cmd.Context()
	if !strings.Contains(ref, "/") {
		resp, err := c.ListTasks(ctx, &berthv1.ListTasksRequest{Namespace: c.namespace, All: true})
		if err != nil {
			return nil, fmt.Errorf("list tasks: %w", err)
		}
		var found []*berthv1.Task
		for _, t := range resp.GetTasks() {
			if strings.HasPrefix(t.GetMeta().GetId(), ref) {
				found = append(found, t)
			}
		}
		switch len(found) {
		case 0:
			return nil, fmt.Errorf("no task with ID %q in namespace %q; name a service as APP/SERVICE, or see `berth ps -a`", ref, c.namespace)
		case 1:
		default:
			return nil, fmt.Errorf("task ID prefix %q matches %d tasks; give more of the ID", ref, len(found))
		}
		t := found[0]
		req.App, req.Service, req.TaskId = t.GetApp(), t.GetService(), t.GetMeta().GetId()
		return found, nil
	}

	app, service, err := splitAppService(ref)
	if err != nil || service == "" {
		return nil, usageErrorf("%q is not APP/SERVICE, APP/SERVICE.SLOT or a task ID", ref)
	}
	var slot uint64
	if i := strings.LastIndexByte(service, '.'); i > 0 {
		if n, err := strconv.ParseUint(service[i+1:], 10, 64); err == nil && n > 0 {
			service, slot = service[:i], n
		}
	}
	req.App, req.Service = app, service
	resp, err := c.ListTasks(ctx, &berthv1.ListTasksRequest{Namespace: c.namespace, App: app, Service: service, All: true})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	tasks := resp.GetTasks()
	if slot == 0 {
		return tasks, nil
	}
	// Several tasks may have held the slot; show the one meant to run now,
	// else the newest.
	var pick *berthv1.Task
	for _, t := range tasks {
		if t.GetSlot() != slot {
			continue
		}
		if pick == nil || betterLogTask(t, pick) {
			pick = t
		}
	}
	if pick == nil {
		return nil, fmt.Errorf("service %s/%s has no task in slot %d; see `berth ps %s/%s -a`", app, service, slot, app, service)
	}
	req.TaskId = pick.GetMeta().GetId()
	return []*berthv1.Task{pick}, nil
}

func betterLogTask(t, than *berthv1.Task) bool {
	tr := t.GetDesiredState() == berthv1.TaskState_TASK_STATE_RUNNING
	thanR := than.GetDesiredState() == berthv1.TaskState_TASK_STATE_RUNNING
	if tr != thanR {
		return tr
	}
	return t.GetMeta().GetCreatedAt().AsTime().After(than.GetMeta().GetCreatedAt().AsTime())
}

// logPrinter writes log entries, prefixed with their task when several
// tasks are shown.
type logPrinter struct {
	stdout, stderr io.Writer
	nodeNames      map[string]string
	prefixed       bool
	timestamps     bool
}

// logTimeLayout is RFC 3339 with a fixed number of fractional digits, so
// that the lines' text starts in one column.
const logTimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// logTime is the time an entry was written, in UTC, or "-" padded to the
// same width when the node does not know it.
func logTime(e *berthv1.LogEntry) string {
	if e.GetAt() == nil {
		return fmt.Sprintf("%-*s", len("2006-01-02T15:04:05.000000000Z"), "-")
	}
	return e.GetAt().AsTime().UTC().Format(logTimeLayout)
}

func (p *logPrinter) print(e *berthv1.LogEntry) {
	w := p.stdout
	if e.GetStream() == berthv1.LogStream_LOG_STREAM_STDERR {
		w = p.stderr
	}
	line := e.GetLine()
	var buf bytes.Buffer
	if p.prefixed {
		buf.WriteString(logPrefix(e, p.nodeNames))
	}
	if p.timestamps {
		buf.WriteString(logTime(e))
		buf.WriteByte(' ')
	}
	buf.Write(line)
	if !bytes.HasSuffix(line, []byte("\n")) {
		buf.WriteByte('\n')
	}
	// One write per line keeps lines whole when stdout and stderr are the
	// same terminal.
	w.Write(buf.Bytes())
}

// logPrefix is "service.slot@node | ", or "service@node | " for a global
// service's task, which has no slot.
func logPrefix(e *berthv1.LogEntry, nodeNames map[string]string) string {
	node := nodeNames[e.GetNodeId()]
	if node == "" {
		node = shortID(e.GetNodeId())
	}
	name := e.GetService()
	if e.GetSlot() > 0 {
		name = fmt.Sprintf("%s.%d", name, e.GetSlot())
	}
	return fmt.Sprintf("%s@%s | ", name, node)
}
