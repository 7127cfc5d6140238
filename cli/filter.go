package cli

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// filterKeys are the --filter keys of one listing command: how to read
// each key's values from a row. A row matches a key when one of the
// filter's values for it equals one of the row's values; label values
// are "KEY=VALUE" and "KEY", so label=tier and label=tier=web both work.
type filterKeys[T any] map[string]func(T) []string

// filters are the --filter flags given: values by key. Values of one key
// are alternatives (OR), different keys must all match (AND), as in
// docker.
type filters struct {
	valid  []string
	values map[string][]string
}

// filterValue is the --filter flag.
type filterValue struct{ f *filters }

func (v filterValue) String() string { return "" }
func (v filterValue) Type() string   { return "key=value" }

func (v filterValue) Set(s string) error {
	key, value, ok := strings.Cut(s, "=")
	key = strings.ToLower(strings.TrimSpace(key))
	if !ok || key == "" || value == "" {
		return fmt.Errorf("--filter %q: write KEY=VALUE, with KEY one of %s", s, strings.Join(v.f.valid, ", "))
	}
	if !slices.Contains(v.f.valid, key) {
		return fmt.Errorf("--filter %q: unknown key %q; use one of %s", s, key, strings.Join(v.f.valid, ", "))
	}
	v.f.values[key] = append(v.f.values[key], value)
	return nil
}

// addFilterFlag adds --filter to cmd with the keys of keys.
func addFilterFlag[T any](cmd *cobra.Command, keys filterKeys[T]) *filters {
	f := &filters{values: map[string][]string{}}
	for k := range keys {
		f.valid = append(f.valid, k)
	}
	slices.Sort(f.valid)
	cmd.Flags().Var(filterValue{f}, "filter", "keep only rows that match KEY=VALUE (repeatable; keys: "+strings.Join(f.valid, ", ")+")")
	return f
}

// has reports whether any filter was given for key.
func (f *filters) has(key string) bool { return len(f.values[key]) > 0 }

// single is the value of key when the filter gives exactly one, which a
// request can carry to the server; "" otherwise.
func (f *filters) single(key string) string {
	if v := f.values[key]; len(v) == 1 {
		return v[0]
	}
	return ""
}

// filterRows keeps the rows that match every filter given.
func filterRows[T any](rows []T, f *filters, keys filterKeys[T]) []T {
	if f == nil || len(f.values) == 0 {
		return rows
	}
	out := rows[:0:0]
	for _, r := range rows {
		if matchRow(r, f, keys) {
			out = append(out, r)
		}
	}
	return out
}

func matchAny(want, have []string) bool {
	for _, w := range want {
		if slices.Contains(have, w) {
			return true
		}
	}
	return false
}

// matchRow reports whether row matches every key of f.
func matchRow[T any](row T, f *filters, keys filterKeys[T]) bool {
	for key, want := range f.values {
		if !matchAny(want, keys[key](row)) {
			return false
		}
	}
	return true
}

// labelValues are a row's labels as filter values: "KEY=VALUE" and "KEY".
func labelValues(labels map[string]string) []string {
	out := make([]string, 0, 2*len(labels))
	for k, v := range labels {
		out = append(out, k+"="+v, k)
	}
	return out
}
