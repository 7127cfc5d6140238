package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// outputFormat is the value of a listing command's -o flag. Checking it when
// the flag is parsed reports a typo before any call to the server.
type outputFormat string

const (
	formatTable outputFormat = "table"
	formatJSON  outputFormat = "json"
	formatYAML  outputFormat = "yaml"
)

func (f *outputFormat) String() string { return string(*f) }
func (f *outputFormat) Type() string   { return "format" }

func (f *outputFormat) Set(s string) error {
	switch v := outputFormat(s); v {
	case formatTable, formatJSON, formatYAML:
		*f = v
		return nil
	}
	return fmt.Errorf("unknown output format %q: use table, json or yaml", s)
}

// addOutputFlag adds -o/--output to cmd, defaulting to a table.
func addOutputFlag(cmd *cobra.Command) *outputFormat {
	f := formatTable
	cmd.Flags().VarP(&f, "output", "o", "output format: table, json or yaml")
	return &f
}

// printList writes rows (a slice of JSON-tagged structs) as JSON or YAML,
// or calls table to write them as aligned columns.
func printList(w io.Writer, f outputFormat, rows any, table func(tw io.Writer)) error {
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
		tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
		table(tw)
		return tw.Flush()
	}
}
