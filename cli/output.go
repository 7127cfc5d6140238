package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// outputFormat is the value of a listing command's -o flag. Checking it when
// the flag is parsed reports a typo before any call to the server.
type outputFormat string

const (
	formatTable outputFormat = "table"
	// formatWide is the table with more columns, where a command has
	// them (ps: the tasks' addresses); elsewhere it is the table.
	formatWide outputFormat = "wide"
	formatJSON outputFormat = "json"
	formatYAML outputFormat = "yaml"
)

func (f *outputFormat) String() string { return string(*f) }
func (f *outputFormat) Type() string   { return "format" }

func (f *outputFormat) Set(s string) error {
	switch v := outputFormat(s); v {
	case formatTable, formatWide, formatJSON, formatYAML:
		*f = v
		return nil
	}
	return fmt.Errorf("unknown output format %q: use table, wide, json or yaml", s)
}

// addOutputFlag adds -o/--output to cmd, defaulting to a table.
func addOutputFlag(cmd *cobra.Command) *outputFormat {
	f := formatTable
	cmd.Flags().VarP(&f, "output", "o", "output format: table, wide, json or yaml")
	return &f
}

// printList writes rows (a slice of JSON-tagged structs) as JSON or YAML,
// or calls table to write them as aligned columns, with states in colour
// when w is a terminal (see colorOutput).
func printList(w io.Writer, f outputFormat, rows any, table func(tw io.Writer)) error {
	return writeList(w, f, rows, table, colorOutput(w))
}

// writeList is printList with the choice of colour made by the caller,
// for output drawn into a buffer first.
func writeList(w io.Writer, f outputFormat, rows any, table func(tw io.Writer), color bool) error {
	switch f {
	case formatJSON:
		data, err := json.MarshalIndent(rows, "", "  ")
		if err != nil {
			return fmt.Errorf("encode JSON: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", data)
		return err
	case formatYAML:
		data, err := yaml.Marshal(rows)
		if err != nil {
			return fmt.Errorf("encode YAML: %w", err)
		}
		_, err = w.Write(data)
		return err
	default:
		// The table is drawn into a buffer to tidy it: tabwriter pads
		// empty last cells with spaces, and colour must go in after
		// alignment, since escape sequences would count as width.
		var buf bytes.Buffer
		tw := tabwriter.NewWriter(&buf, 0, 8, 3, ' ', 0)
		table(tw)
		if err := tw.Flush(); err != nil {
			return err
		}
		text := trimLines(buf.String())
		if color {
			text = colorStates(text)
		}
		_, err := io.WriteString(w, text)
		return err
	}
}

// trimLines drops the spaces at the ends of the lines of s.
func trimLines(s string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if body, ok := strings.CutSuffix(l, "\n"); ok {
			lines[i] = strings.TrimRight(body, " ") + "\n"
		} else {
			lines[i] = strings.TrimRight(l, " ")
		}
	}
	return strings.Join(lines, "")
}

// terminal reports whether w is a terminal (a character device), as
// stdout is when nobody pipes or redirects it.
func terminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// colorOutput reports whether output to w gets colour: only on a terminal,
// and not when $NO_COLOR is set to anything (https://no-color.org).
func colorOutput(w io.Writer) bool {
	return terminal(w) && os.Getenv("NO_COLOR") == ""
}
