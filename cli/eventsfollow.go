package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"sigs.k8s.io/yaml"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// eventColumns lays out a followed event row. Rows are printed as they
// come, so columns cannot be sized from all of them: these widths fit
// most rows, and a longer value pushes the rest of its row right.
const eventColumns = "%-19s   %-7s   %-20s   %-16s   %s\n"

// followEvents prints the events req selects, then each new one as the
// server sends it, until ctx ends or the server ends the stream.
func (c *cluster) followEvents(ctx context.Context, req *berthv1.ListEventsRequest, flt *filters, w io.Writer, format outputFormat) error {
	names, err := c.nodeNames(ctx)
	if err != nil {
		return err
	}
	stream, err := c.WatchEvents(ctx, req)
	if err != nil {
		return fmt.Errorf("follow events: %w", err)
	}
	table := format == formatTable || format == formatWide
	if table {
		fmt.Fprintf(w, c.followNamespace("NAMESPACE")+eventColumns, "TIME", "KIND", "OBJECT", "ACTION", "MESSAGE")
	}
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) || isCanceled(ctx, err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("follow events: %w", err)
		}
		if ev.GetKind() == "node" && names[ev.GetObjectId()] == "" {
			// A node that joined after the names were read.
			if fresh, err := c.nodeNames(ctx); err == nil {
				names = fresh
			}
		}
		row := newEventRow(ev, c.namespace, names)
		if !matchRow(row, flt, eventFilterKeys) {
			continue
		}
		if table {
			fmt.Fprint(w, c.followNamespace(orDash(row.Namespace)))
		}
		if err := printEventRow(w, format, row); err != nil {
			return err
		}
	}
}

// followNamespace is a followed row's NAMESPACE cell with -A, else
// nothing.
func (c *cluster) followNamespace(ns string) string {
	if !c.allNamespaces {
		return ""
	}
	return fmt.Sprintf("%-16s   ", ns)
}

// printEventRow writes one followed event row.
func printEventRow(w io.Writer, format outputFormat, r eventRow) error {
	return printFollowedRow(w, format, r, func() error {
		_, err := fmt.Fprintf(w, eventColumns, r.at.Local().Format(time.DateTime), r.Kind, r.Object, r.Action, r.Message)
		return err
	})
}

// printFollowedRow writes one row of a followed listing (events -f,
// audit -f): a JSON object on one line, a YAML document, or, for tables,
// what table writes.
func printFollowedRow(w io.Writer, format outputFormat, r any, table func() error) error {
	switch format {
	case formatJSON:
		data, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode JSON: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", data)
		return err
	case formatYAML:
		data, err := yaml.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode YAML: %w", err)
		}
		_, err = fmt.Fprintf(w, "---\n%s", data)
		return err
	case formatTable, formatWide:
		return table()
	default:
		// -q, jsonpath= and --format: what they print for a list of one.
		return writeList(w, format, r, nil, false)
	}
}
