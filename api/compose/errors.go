package compose

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/compose-spec/compose-go/v2/errdefs"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/tree"

	"github.com/berthproject/berth/api/validation"
)

var (
	// schemaErrorRE matches the loader's schema errors:
	// "validating /dir/compose.yaml: services.web additional properties 'imagee' not allowed".
	schemaErrorRE = regexp.MustCompile(`^validating (.+?): (\S*) (.+)$`)
	// unknownKeysRE matches the reason part for unknown keys.
	unknownKeysRE = regexp.MustCompile(`^additional propert(?:y|ies) (.+) not allowed$`)
	quotedRE      = regexp.MustCompile(`'([^']*)'`)
	// servicePathRE finds a service named by path in the loader's other
	// errors, like "services.web: can't set distinct values on ...".
	servicePathRE = regexp.MustCompile(`\bservices\.([a-zA-Z0-9._-]+?)(?:\.([a-zA-Z0-9._\[\]-]+))?:`)
	// serviceNameRE finds a service named in words: cannot extend service "web".
	serviceNameRE = regexp.MustCompile(`\bservice "([^"]+)"`)
	// decodeErrorRE matches each problem the loader finds when it decodes
	// values into their types, one a line:
	// 'services[web].deploy.update_config.delay' time: invalid duration "abc".
	decodeErrorRE = regexp.MustCompile(`(?m)^'services\[([^\]]+)\]\.([^']+)' (.+)$`)
)

// loadError turns an error from the loader into validation.Errors naming
// the file, service and field it concerns.
func loadError(err error, srcs sources, cwd string) validation.Errors {
	// The loader's classification adds nothing for a reader.
	msg := strings.TrimSuffix(err.Error(), ": "+errdefs.ErrInvalid.Error())
	for _, src := range srcs {
		// Show paths the way the user named the files.
		msg = strings.ReplaceAll(msg, src.path, src.name)
	}
	if cwd != "" {
		msg = strings.ReplaceAll(msg, cwd+string(filepath.Separator), "")
	}
	if m := schemaErrorRE.FindStringSubmatch(msg); m != nil {
		return schemaError(m[1], m[2], m[3], srcs)
	}
	if errs := decodeErrors(msg, srcs); len(errs) > 0 {
		return errs
	}
	fe := validation.FieldError{File: srcs.main(), Reason: msg}
	if m := servicePathRE.FindStringSubmatchIndex(msg); m != nil {
		fe.Service = msg[m[2]:m[3]]
		if m[4] >= 0 {
			fe.Field = msg[m[4]:m[5]]
		}
		fe.File, fe.Line = srcs.locate(fieldPath(fe.Service, fe.Field)...)
		// The location is in the prefix now; keep the loader's words.
		fe.Reason = strings.TrimSpace(msg[m[1]:])
	} else if m := serviceNameRE.FindStringSubmatch(msg); m != nil {
		fe.Service = m[1]
		fe.File, fe.Line = srcs.locate("services", fe.Service)
	}
	return validation.Errors{fe}
}

// decodeErrors maps each service value the loader could not decode (a
// negative count, a malformed duration) onto a FieldError at its line.
func decodeErrors(msg string, srcs sources) validation.Errors {
	var errs validation.Errors
	for _, m := range decodeErrorRE.FindAllStringSubmatch(msg, -1) {
		fe := validation.FieldError{Service: m[1], Field: m[2], Reason: "invalid value: " + m[3]}
		if strings.HasSuffix(fe.Field, ".mode") {
			fe.Reason += "; give permission bits in octal, like 0440"
		}
		fe.File, fe.Line = srcs.locate(fieldPath(fe.Service, fe.Field)...)
		errs = append(errs, fe)
	}
	return errs
}

// schemaError maps a schema violation at the dotted path (like
// "services.web.deploy") onto a FieldError.
func schemaError(file, path, reason string, srcs sources) validation.Errors {
	var parts []string
	if path != "" {
		parts = strings.Split(path, ".")
	}
	fe := validation.FieldError{File: file}
	var fieldParts []string
	if len(parts) >= 2 && parts[0] == "services" {
		fe.Service = parts[1]
		fieldParts = parts[2:]
	} else {
		fieldParts = parts
	}
	fe.Field = joinField(fieldParts)
	fe.Reason = reason

	// A key outside a mapping that allows only extensions besides its own
	// keys fails a "false schema" at the key's own path.
	if reason == "false schema" && len(parts) > 1 {
		reason = fmt.Sprintf("additional properties '%s' not allowed", parts[len(parts)-1])
		parts = parts[:len(parts)-1]
		if fe.Service != "" {
			fieldParts = parts[2:]
		} else {
			fieldParts = parts
		}
	}
	m := unknownKeysRE.FindStringSubmatch(reason)
	if m == nil {
		_, fe.Line = locateIn(srcs, file, parts)
		return validation.Errors{fe}
	}
	// One error per unknown key, each with its line and a suggestion.
	var errs validation.Errors
	for _, q := range quotedRE.FindAllStringSubmatch(m[1], -1) {
		key := q[1]
		ke := fe
		ke.Field = joinField(append(append([]string{}, fieldParts...), key))
		_, ke.Line = locateIn(srcs, file, append(append([]string{}, parts...), key))
		ke.Reason = fmt.Sprintf("unknown key %q", key)
		if s := suggestKey(parts, key); s != "" {
			ke.Reason += fmt.Sprintf("; did you mean %q?", s)
		} else {
			ke.Reason += "; remove it, or check its spelling and indentation against the Compose specification"
		}
		errs = append(errs, ke)
	}
	if len(errs) == 0 {
		return validation.Errors{fe}
	}
	return errs
}

// locateIn finds path in the file shown as name, falling back to any file.
func locateIn(srcs sources, name string, path []string) (string, int) {
	for _, src := range srcs {
		if src.name == name {
			if file, line := (sources{src}).locate(path...); line > 0 {
				return file, line
			}
		}
	}
	return srcs.locate(path...)
}

// joinField writes path parts as a field: numeric parts become indexes,
// so ports.0.published reads ports[0].published.
func joinField(parts []string) string {
	var b strings.Builder
	for _, p := range parts {
		if isIndex(p) {
			b.WriteString("[" + p + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

func isIndex(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// fieldPath turns a service's field, like ports[0].published, into the
// path of the key in the file: services, web, ports, 0, published. The
// index of an environment entry counts sorted entries, not lines, so it is
// dropped and the environment key itself is pointed at.
func fieldPath(service, field string) []string {
	path := []string{"services", service}
	if field == "" {
		return path
	}
	for _, part := range strings.Split(field, ".") {
		name, rest, _ := strings.Cut(part, "[")
		path = append(path, name)
		if name == "environment" {
			continue
		}
		for rest != "" {
			idx, after, _ := strings.Cut(rest, "]")
			if idx != "" {
				path = append(path, idx)
			} else {
				path = append(path, tree.PathMatchList)
			}
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return path
}

// invalidProjectName explains how to write a project name.
func invalidProjectName(name string) string {
	msg := fmt.Sprintf("invalid project name %q: use lowercase letters, digits, '-' and '_', starting with a letter or digit", name)
	if s := loader.NormalizeProjectName(name); s != "" {
		msg += fmt.Sprintf(", for example %q", s)
	}
	return msg
}
