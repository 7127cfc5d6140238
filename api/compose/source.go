package compose

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v4"

	"github.com/berthproject/berth/api/validation"
)

// sourceFile is one Compose file as written, kept to check its syntax
// before the loader sees it and to point messages at files and lines.
type sourceFile struct {
	path string // absolute
	name string // as shown to the user
	docs []*yaml.Node
}

// sources are the project's Compose files in the order they apply.
type sources []*sourceFile

// yamlMarkRE matches the positions in a parser error, like
// "yaml: while parsing a block mapping at line 1, column 1: line 3, column 4: did not find expected key".
var yamlMarkRE = regexp.MustCompile(`line (\d+)(?:, column \d+)?: `)

// readSources reads and parses every file, reporting unreadable files and
// YAML syntax errors with their file and line.
func readSources(paths []string, cwd string) (sources, validation.Errors) {
	var (
		srcs sources
		errs validation.Errors
	)
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			abs = p
		}
		src := &sourceFile{path: abs, name: displayName(abs, cwd)}
		srcs = append(srcs, src)
		content, err := os.ReadFile(abs)
		if err != nil {
			errs = append(errs, validation.FieldError{File: src.name, Reason: fmt.Sprintf("cannot read the Compose file: %v; check the path given with -f", unwrapPathError(err))})
			continue
		}
		dec := yaml.NewDecoder(bytes.NewReader(content))
		for {
			var doc yaml.Node
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				errs = append(errs, yamlError(src.name, err))
				break
			}
			if fe, ok := aliasCycle(src.name, &doc, map[*yaml.Node]bool{}); ok {
				errs = append(errs, fe)
				break
			}
			src.docs = append(src.docs, &doc)
		}
	}
	return srcs, errs
}

// aliasCycle finds an alias inside the node its anchor names (like
// "x: &a {<<: *a}"), which has no finite expansion: the loader would never
// return. inside holds the nodes n lies in.
func aliasCycle(file string, n *yaml.Node, inside map[*yaml.Node]bool) (validation.FieldError, bool) {
	if n.Kind == yaml.AliasNode {
		if inside[n.Alias] {
			return validation.FieldError{File: file, Line: n.Line, Reason: fmt.Sprintf("alias *%s is inside the anchor &%s it refers to, so it never ends; refer to another anchor, or copy what you meant", n.Value, n.Value)}, true
		}
		return validation.FieldError{}, false
	}
	inside[n] = true
	defer delete(inside, n)
	for _, c := range n.Content {
		if fe, ok := aliasCycle(file, c, inside); ok {
			return fe, true
		}
	}
	return validation.FieldError{}, false
}

// yamlError turns a parser error into a FieldError at the line the parser
// stopped at (the last position in its message).
func yamlError(file string, err error) validation.FieldError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	fe := validation.FieldError{File: file}
	if marks := yamlMarkRE.FindAllStringSubmatchIndex(msg, -1); marks != nil {
		last := marks[len(marks)-1]
		fe.Line, _ = strconv.Atoi(msg[last[2]:last[3]])
		context := strings.TrimSuffix(strings.TrimSpace(msg[:last[0]]), ":")
		context = strings.TrimSuffix(strings.TrimSuffix(context, " at <unknown position>"), " at")
		msg = msg[last[1]:]
		if context != "" {
			msg += " (" + context + ")"
		}
	}
	fe.Reason = "invalid YAML: " + msg + "; check the indentation and quoting around this line"
	return fe
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// displayName shows abs relative to the working directory when it lies
// beneath it, as users usually name their files.
func displayName(abs, cwd string) string {
	if cwd != "" {
		if rel, err := filepath.Rel(cwd, abs); err == nil && !strings.HasPrefix(rel, "..") {
			return rel
		}
	}
	return abs
}

// name returns how to show the file at abs: as one of ours when it is,
// else relative to the first file's directory.
func (s sources) name(abs string) string {
	for _, src := range s {
		if src.path == abs {
			return src.name
		}
	}
	return abs
}

// main returns the name of the first file.
func (s sources) main() string {
	if len(s) == 0 {
		return ""
	}
	return s[0].name
}

// locate finds the last file (later files override earlier ones) that sets
// the key at path, whose parts are mapping keys, sequence indexes, or "[]"
// for any sequence item, and returns its name and the key's line. When no file sets the
// whole path, it returns the deepest part found; when none sets any of it,
// the first file without a line.
func (s sources) locate(path ...string) (file string, line int) {
	file = s.main()
	for depth := len(path); depth > 0; depth-- {
		for i := len(s) - 1; i >= 0; i-- {
			for _, doc := range s[i].docs {
				if key, _ := lookup(doc, path[:depth]); key != nil {
					return s[i].name, key.Line
				}
			}
		}
	}
	return file, 0
}

// lookup returns the node at path under n: key is the mapping key (or the
// sequence item) and value what it holds. Both are nil when path is not set.
func lookup(n *yaml.Node, path []string) (key, value *yaml.Node) {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if len(path) == 0 {
		return n, n
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value != path[0] {
				continue
			}
			if len(path) == 1 {
				return n.Content[i], n.Content[i+1]
			}
			if k, v := lookup(n.Content[i+1], path[1:]); k != nil {
				return k, v
			}
		}
	case yaml.SequenceNode:
		if i, err := strconv.Atoi(path[0]); err == nil {
			if i < 0 || i >= len(n.Content) {
				return nil, nil
			}
			return lookup(n.Content[i], path[1:])
		}
		if path[0] != "[]" {
			return nil, nil
		}
		for _, item := range n.Content {
			if k, v := lookup(item, path[1:]); k != nil {
				return k, v
			}
		}
	}
	return nil, nil
}

// checkShortPorts parses every literal short-syntax port (like
// "8080:80/udp"), because the loader reports a bad one without saying
// where it is. Ports holding ${VARIABLES} are left to the loader.
func (s sources) checkShortPorts() validation.Errors {
	var errs validation.Errors
	for _, src := range s {
		for _, doc := range src.docs {
			_, services := lookup(doc, []string{"services"})
			if services == nil || services.Kind != yaml.MappingNode {
				continue
			}
			for i := 0; i+1 < len(services.Content); i += 2 {
				name := services.Content[i].Value
				_, ports := lookup(services.Content[i+1], []string{"ports"})
				if ports == nil || ports.Kind != yaml.SequenceNode {
					continue
				}
				for j, item := range ports.Content {
					if item.Kind != yaml.ScalarNode || strings.Contains(item.Value, "$") {
						continue
					}
					if _, err := types.ParsePortConfig(item.Value); err != nil {
						errs = append(errs, validation.FieldError{
							File: src.name, Line: item.Line, Service: name, Field: fmt.Sprintf("ports[%d]", j),
							Reason: fmt.Sprintf("%q is not a valid port (%v); write [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL] with ports 1-65535, like 8080:80", item.Value, err),
						})
					}
				}
			}
		}
	}
	return errs
}
