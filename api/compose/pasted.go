package compose

import (
	"fmt"
	"path"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v4"

	"github.com/berthproject/berth/api/validation"
)

// A Compose file handed to a server as text (the dashboard's) is loaded on
// the server, whose files and environment are not the user's: every key
// that would read a file or directory there is refused, before compose-go
// reads any of it. Keys compose-go reads while loading (include, env_file,
// label_file, extends.file) are found in the YAML as written; keys only
// Berth's conversion would use (build contexts, bind sources) are checked
// after loading, where interpolation has happened.

// notHere says why a key is refused in a pasted file and what to do.
const notHere = "a Compose file pasted into the dashboard cannot read files of the server; apply it with the berth CLI, which reads them on your machine"

// serviceFileKeys are the keys of a service (or of one of its pre_start
// hooks) whose value names files compose-go reads while loading.
var serviceFileKeys = []string{"env_file", "label_file"}

// maxMergeDepth bounds how deep merge keys (<<) are followed, against
// documents built to make the walk slow.
const maxMergeDepth = 8

// pastedFileReferences finds the keys in the files as written that would
// make compose-go read files: top-level include, and a service's (or job's)
// env_file, label_file and extends.file, also those of pre_start hooks and
// those that merge keys (<<: *anchor) bring in.
func (s sources) pastedFileReferences() validation.Errors {
	var errs validation.Errors
	for _, src := range s {
		for _, doc := range src.docs {
			top := docRoot(doc)
			for _, kv := range mappingPairs(top, 0) {
				switch kv.key.Value {
				case "include":
					errs = append(errs, validation.FieldError{File: src.name, Line: kv.key.Line, Field: "include", Reason: notHere + " (paste the included services into this file)"})
				case "services", "jobs":
					for _, svc := range mappingPairs(kv.value, 0) {
						errs = append(errs, serviceFileReferences(src.name, svc.key.Value, svc.value)...)
					}
				}
			}
		}
	}
	return errs
}

// serviceFileReferences reports the keys of one service that read files.
func serviceFileReferences(file, service string, svc *yaml.Node) validation.Errors {
	var errs validation.Errors
	fail := func(key *yaml.Node, field, how string) {
		errs = append(errs, validation.FieldError{File: file, Line: key.Line, Service: service, Field: field, Reason: notHere + how})
	}
	for _, kv := range mappingPairs(svc, 0) {
		switch kv.key.Value {
		case "env_file":
			fail(kv.key, "env_file", " (write the variables under environment:)")
		case "label_file":
			fail(kv.key, "label_file", " (write the labels under labels:)")
		case "extends":
			for _, ext := range mappingPairs(kv.value, 0) {
				if ext.key.Value == "file" {
					fail(ext.key, "extends.file", " (extend a service of this file, or paste the other service here)")
				}
			}
		case "pre_start":
			hooks := resolveAlias(kv.value)
			if hooks == nil || hooks.Kind != yaml.SequenceNode {
				continue
			}
			for i, hook := range hooks.Content {
				for _, hk := range mappingPairs(hook, 0) {
					for _, k := range serviceFileKeys {
						if hk.key.Value == k {
							fail(hk.key, fmt.Sprintf("pre_start[%d].%s", i, k), "")
						}
					}
				}
			}
		}
	}
	return errs
}

// keyValue is one entry of a YAML mapping.
type keyValue struct{ key, value *yaml.Node }

// mappingPairs returns the entries of a mapping, following aliases and
// merge keys (<<: *anchor or <<: [*a, *b]) as the loader does; nil when n
// is no mapping.
func mappingPairs(n *yaml.Node, depth int) []keyValue {
	n = resolveAlias(n)
	if n == nil || n.Kind != yaml.MappingNode || depth > maxMergeDepth {
		return nil
	}
	var out []keyValue
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := n.Content[i], n.Content[i+1]
		if key.Value != "<<" || key.Style != 0 { // a quoted "<<" is a plain key
			out = append(out, keyValue{key, value})
			continue
		}
		merged := resolveAlias(value)
		if merged != nil && merged.Kind == yaml.SequenceNode {
			for _, item := range merged.Content {
				out = append(out, mappingPairs(item, depth+1)...)
			}
			continue
		}
		out = append(out, mappingPairs(merged, depth+1)...)
	}
	return out
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < maxMergeDepth; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

func docRoot(doc *yaml.Node) *yaml.Node {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		return doc.Content[0]
	}
	return doc
}

// pastedServiceFiles reports what a loaded service of a pasted file would
// use of the server's disk: a build context or Dockerfile (only an inline
// Dockerfile and the default context, which is empty, are allowed), and
// bind mounts whose source is not an absolute path (~ and relative paths
// would be the server's; an absolute one is a path on the node). Paths are
// not resolved for pasted files, so each is checked as interpolated.
func pastedServiceFiles(svc types.ServiceConfig) validation.Errors {
	var errs validation.Errors
	fail := func(field, reason string) {
		errs = append(errs, validation.FieldError{Service: svc.Name, Field: field, Reason: reason})
	}
	if b := svc.Build; b != nil {
		if b.Context != "" && path.Clean(b.Context) != "." {
			fail("build.context", notHere+" (build from the CLI, or name an image)")
		}
		if b.Dockerfile != "" && b.DockerfileInline == "" && b.Dockerfile != "Dockerfile" {
			fail("build.dockerfile", notHere+" (write the Dockerfile under dockerfile_inline:)")
		}
		if len(b.AdditionalContexts) > 0 {
			fail("build.additional_contexts", notHere)
		}
		if len(b.SSH) > 0 {
			fail("build.ssh", notHere)
		}
	}
	for i, v := range svc.Volumes {
		if v.Type == types.VolumeTypeBind && !path.IsAbs(v.Source) {
			fail(fmt.Sprintf("volumes[%d]", i), fmt.Sprintf("bind source %q is not an absolute path: in a pasted Compose file a bind mount names a directory on the node from its root, like /srv/data", v.Source))
		}
	}
	return errs
}

// withPasted loads a pasted file without resolving paths (which would
// expand ~ to the server's home directory and make relative paths the
// server's), without include, and without reading env_file and label_file:
// pastedFileReferences refuses those keys already, and this keeps a key
// it might miss from reading anything.
func withPasted(pasted bool) cli.ProjectOptionsFn {
	return func(o *cli.ProjectOptions) error {
		if !pasted {
			return nil
		}
		return cli.WithLoadOptions(func(lo *loader.Options) {
			lo.ResolvePaths = false
			lo.SkipInclude = true
			lo.SkipResolveEnvironment = true
			lo.SkipResolveLabels = true
		})(o)
	}
}
