package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"text/template"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/client-go/util/jsonpath"
	"sigs.k8s.io/yaml"
)

// outputFormat is how a listing command prints its rows: the value of its
// -o flag, or what --format or -q set. Checking it when the flag is
// parsed reports a typo, or a template that does not parse, before any
// call to the server.
//
// Besides the plain formats it holds a template: "jsonpath=TEMPLATE"
// (kubectl's JSONPath) or "go-template=TEMPLATE" (--format).
type outputFormat string

const (
	formatTable outputFormat = "table"
	// formatWide is the table with more columns, where a command has
	// them (ps: the tasks' addresses); elsewhere it is the table.
	formatWide  outputFormat = "wide"
	formatJSON  outputFormat = "json"
	formatYAML  outputFormat = "yaml"
	formatQuiet outputFormat = "quiet"

	jsonpathPrefix   = "jsonpath="
	goTemplatePrefix = "go-template="
)

// outputFlags are the three flags that choose an output format; they set
// one outputFormat, and only one of them may be given.
type outputFlags struct {
	format *outputFormat
	setBy  string
}

// choose sets the format from flag, refusing a second flag.
func (o *outputFlags) choose(flag string, f outputFormat) error {
	if o.setBy != "" && o.setBy != flag {
		return fmt.Errorf("%s and %s both choose the output: give one", o.setBy, flag)
	}
	o.setBy = flag
	*o.format = f
	return nil
}

// outputValue is -o/--output.
type outputValue struct{ *outputFlags }

func (v outputValue) String() string { return string(*v.format) }
func (v outputValue) Type() string   { return "format" }

func (v outputValue) Set(s string) error {
	f := outputFormat(s)
	switch {
	case f == formatTable, f == formatWide, f == formatJSON, f == formatYAML:
	case strings.HasPrefix(s, jsonpathPrefix):
		if _, err := parseJSONPath(strings.TrimPrefix(s, jsonpathPrefix)); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown output format %q: use table, wide, json, yaml or jsonpath=TEMPLATE (or --format TEMPLATE)", s)
	}
	return v.choose("-o", f)
}

// templateValue is --format: a Go template, or docker's words json and
// table.
type templateValue struct{ *outputFlags }

func (v templateValue) String() string { return "" }
func (v templateValue) Type() string   { return "template" }

func (v templateValue) Set(s string) error {
	switch s {
	case "json":
		return v.choose("--format", formatJSON)
	case "table", "":
		return v.choose("--format", formatTable)
	}
	if _, err := parseGoTemplate(s); err != nil {
		return err
	}
	return v.choose("--format", outputFormat(goTemplatePrefix+s))
}

// quietValue is -q/--quiet.
type quietValue struct{ *outputFlags }

func (v quietValue) String() string   { return fmt.Sprint(v.setBy == "-q") }
func (v quietValue) Type() string     { return "bool" }
func (v quietValue) IsBoolFlag() bool { return true }

func (v quietValue) Set(s string) error {
	if s != "true" {
		return nil
	}
	return v.choose("-q", formatQuiet)
}

// addOutputFlag adds -o/--output, --format and -q/--quiet to cmd: the
// format defaults to a table.
func addOutputFlag(cmd *cobra.Command) *outputFormat {
	f := formatTable
	flags := &outputFlags{format: &f}
	cmd.Flags().VarP(outputValue{flags}, "output", "o", "output format: table, wide (more columns), json, yaml, or jsonpath=TEMPLATE (kubectl's JSONPath over the JSON form)")
	cmd.Flags().Var(templateValue{flags}, "format", `print each row with a Go template over its JSON fields, such as '{{.name}}'; "table {{.id}}\t{{.state}}" adds a header, {{json .}} prints a value as JSON`)
	cmd.Flags().VarP(quietValue{flags}, "quiet", "q", "print only the names or IDs (what other commands take as argument), one a line")
	cmd.Flags().Lookup("quiet").NoOptDefVal = "true"
	return &f
}

// parseJSONPath parses a kubectl JSONPath template; its error is a usage
// error naming the template.
func parseJSONPath(text string) (*jsonpath.JSONPath, error) {
	jp := jsonpath.New("output")
	if err := jp.Parse(text); err != nil {
		return nil, fmt.Errorf("jsonpath template %q: %v; write it as kubectl does, like '{[*].name}' or '{range [*]}{.id}{\"\\n\"}{end}'", text, err)
	}
	return jp, nil
}

// templateFuncs are the helpers of --format templates, as docker has them.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"join":  strings.Join,
	"upper": strings.ToUpper,
	"lower": strings.ToLower,
}

// parseGoTemplate parses a --format template, less docker's "table "
// prefix.
func parseGoTemplate(text string) (*template.Template, error) {
	body, _ := strings.CutPrefix(text, "table ")
	t, err := template.New("format").Funcs(templateFuncs).Option("missingkey=error").Parse(unescapeTabs(body))
	if err != nil {
		return nil, fmt.Errorf("--format %q: %v; write a Go template over the fields of -o json, like '{{.name}}'", text, err)
	}
	return t, nil
}

// unescapeTabs turns the \t and \n typed in a shell's single quotes into
// the characters, as docker does.
func unescapeTabs(s string) string {
	return strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(s)
}

// printList writes rows (a slice of JSON-tagged structs, or one struct) in
// format f, calling table to write them as aligned columns for the table
// formats, with states in colour when w is a terminal (see colorOutput).
func printList(w io.Writer, f outputFormat, rows any, table func(tw io.Writer)) error {
	return writeList(w, f, rows, table, colorOutput(w))
}

// writeList is printList with the choice of colour made by the caller,
// for output drawn into a buffer first.
func writeList(w io.Writer, f outputFormat, rows any, table func(tw io.Writer), color bool) error {
	switch {
	case f == formatJSON:
		data, err := json.MarshalIndent(rows, "", "  ")
		if err != nil {
			return fmt.Errorf("encode JSON: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", data)
		return err
	case f == formatYAML:
		data, err := yaml.Marshal(rows)
		if err != nil {
			return fmt.Errorf("encode YAML: %w", err)
		}
		_, err = w.Write(data)
		return err
	case f == formatQuiet:
		return writeQuiet(w, rows)
	case strings.HasPrefix(string(f), jsonpathPrefix):
		return writeJSONPath(w, strings.TrimPrefix(string(f), jsonpathPrefix), rows)
	case strings.HasPrefix(string(f), goTemplatePrefix):
		return writeGoTemplate(w, strings.TrimPrefix(string(f), goTemplatePrefix), rows)
	default:
		if table == nil {
			// A single object with no table form.
			return writeList(w, formatYAML, rows, nil, color)
		}
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

// quietKeyer is a row that names itself for -q other than by its "id"
// or "name" field, such as a service as APP/SERVICE.
type quietKeyer interface{ quietKey() string }

// quietRow holds the JSON fields that name a row for -q; the first one
// set wins. Decoding into it skips the other fields, which keeps -q quick
// on long lists.
type quietRow struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Pattern  string `json:"pattern"`
	Registry string `json:"registry"`
	Task     string `json:"task"`
	ObjectID string `json:"objectId"`
}

func (r quietRow) key() string {
	for _, k := range []string{r.ID, r.Name, r.Pattern, r.Registry, r.Task, r.ObjectID} {
		if k != "" {
			return k
		}
	}
	return ""
}

// writeQuiet prints what names each row, one a line and each once: the
// row's quietKey, else the first field of quietRow it has.
func writeQuiet(w io.Writer, rows any) error {
	var keys []string
	list, isList := asSlice(rows)
	if !isList {
		list = []any{rows}
	}
	if len(list) > 0 {
		if _, ok := list[0].(quietKeyer); ok {
			for _, r := range list {
				keys = append(keys, r.(quietKeyer).quietKey())
			}
		} else {
			data, err := json.Marshal(list)
			if err != nil {
				return fmt.Errorf("encode JSON: %w", err)
			}
			var named []quietRow
			if err := json.Unmarshal(data, &named); err != nil {
				return fmt.Errorf("decode JSON: %w", err)
			}
			for _, r := range named {
				keys = append(keys, r.key())
			}
		}
	}
	seen := map[string]bool{}
	var out strings.Builder
	for _, key := range keys {
		if key == "" || seen[key] {
			continue
		}
		seen[key] = true
		out.WriteString(key + "\n")
	}
	_, err := io.WriteString(w, out.String())
	return err
}

// writeJSONPath runs a kubectl JSONPath template over the JSON form of
// rows (a list, so '{[*].name}' lists names).
func writeJSONPath(w io.Writer, text string, rows any) error {
	jp, err := parseJSONPath(text)
	if err != nil {
		return &usageError{err: err}
	}
	var data any
	if err := roundTrip(rows, &data); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := jp.Execute(&buf, data); err != nil {
		return &usageError{err: fmt.Errorf("jsonpath template %q: %v; the fields are those of -o json", text, err)}
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// templateField finds the fields a template names, for the header of
// docker's "table" form.
var templateField = regexp.MustCompile(`{{\s*\.(\w+)\s*}}`)

// writeGoTemplate runs a --format template once for each row (or once for
// a single object), a line each; "table " first adds a header made of
// the fields' names and aligns the columns.
func writeGoTemplate(w io.Writer, text string, rows any) error {
	t, err := parseGoTemplate(text)
	if err != nil {
		return &usageError{err: err}
	}
	items, err := jsonRows(rows)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	body, table := strings.CutPrefix(text, "table ")
	if table {
		header := templateField.ReplaceAllStringFunc(unescapeTabs(body), func(m string) string {
			return strings.ToUpper(templateField.FindStringSubmatch(m)[1])
		})
		buf.WriteString(header + "\n")
	}
	for _, item := range items {
		if err := t.Execute(&buf, item); err != nil {
			return &usageError{err: fmt.Errorf("--format %q: %v; the fields are those of -o json: %s", text, err, fieldNames(item))}
		}
		buf.WriteString("\n")
	}
	if !table {
		_, err = w.Write(buf.Bytes())
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	if _, err := tw.Write(buf.Bytes()); err != nil {
		return err
	}
	return tw.Flush()
}

// fieldNames lists the keys of a JSON object, for an error message.
func fieldNames(item any) string {
	m, ok := item.(map[string]any)
	if !ok {
		return "(not an object)"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return strings.Join(keys, ", ")
}

// jsonRows is the JSON form of rows as a list of generic values: one
// item for a single object. Keys that some rows leave out (omitempty) are
// filled in as null in the others, so that a template naming one is not
// an error for the rows that lack it.
func jsonRows(rows any) ([]any, error) {
	items, err := jsonItems(rows)
	if err != nil {
		return nil, err
	}
	all := map[string]bool{}
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			for k := range m {
				all[k] = true
			}
		}
	}
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			for k := range all {
				if _, ok := m[k]; !ok {
					m[k] = nil
				}
			}
		}
	}
	return items, nil
}

// jsonItems is the JSON form of rows as a list: one item for a single
// object.
func jsonItems(rows any) ([]any, error) {
	var data any
	if err := roundTrip(rows, &data); err != nil {
		return nil, err
	}
	items, ok := data.([]any)
	if !ok {
		items = []any{data}
	}
	return items, nil
}

// roundTrip encodes v as JSON and decodes it into out.
func roundTrip(v any, out *any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	return json.Unmarshal(data, out)
}

// asSlice returns the elements of a slice held in an any.
func asSlice(v any) ([]any, bool) {
	rv := reflect.ValueOf(v)
	if !rv.IsValid() || rv.Kind() != reflect.Slice {
		return nil, false
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = rv.Index(i).Interface()
	}
	return out, true
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

// terminal reports whether w is a terminal (not a file, a pipe or
// /dev/null), as stdout is when nobody pipes or redirects it.
func terminal(w io.Writer) bool { return terminalFd(w) >= 0 }

// terminalFd returns the file descriptor of f (a reader or a writer)
// when it is a terminal, else -1.
func terminalFd(f any) int {
	file, ok := f.(*os.File)
	if !ok {
		return -1
	}
	fd := int(file.Fd())
	if !term.IsTerminal(fd) {
		return -1
	}
	return fd
}

// colorOutput reports whether output to w gets colour: only on a terminal,
// and not when $NO_COLOR is set to anything (https://no-color.org).
func colorOutput(w io.Writer) bool {
	return terminal(w) && os.Getenv("NO_COLOR") == ""
}
