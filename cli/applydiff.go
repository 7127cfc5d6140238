package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/revision"
	"github.com/berthproject/berth/api/validation"
)

// diffLine is one changed field: op is '+' (added), '-' (removed) or '~'
// (changed from old to new).
type diffLine struct {
	op       byte
	path     string
	old, new string
}

func (l diffLine) String() string {
	switch l.op {
	case '+':
		return "+ " + l.path + ": " + l.new
	case '-':
		return "- " + l.path + ": " + l.old
	}
	return "~ " + l.path + ": " + l.old + " → " + l.new
}

// composePaths names top-level spec fields as a Compose file does, where
// the names differ; the others keep their API names.
var composePaths = map[string]string{
	"env":             "environment",
	"mode":            "deploy.mode",
	"replicas":        "deploy.replicas",
	"limits":          "deploy.resources.limits",
	"reservations":    "deploy.resources.reservations",
	"placement":       "deploy.placement",
	"restart_policy":  "deploy.restart_policy",
	"update_config":   "deploy.update_config",
	"rollback_config": "deploy.rollback_config",
	"strategy":        "x-berth.strategy",
}

// argvFields are lists whose order makes their meaning: a change shows the
// whole list before and after, not items added and removed.
var argvFields = map[string]bool{"command": true, "entrypoint": true, "test": true}

// printDiff writes, for each service of app, the spec fields that
// applying services would change: "~ service web" and its changed
// fields, "+ service db" and its fields, "- service old". Unchanged
// services print nothing.
func (c *cluster) printDiff(ctx context.Context, w io.Writer, app string, services []*berthv1.Service) error {
	resp, err := c.ListServices(ctx, &berthv1.ListServicesRequest{Namespace: c.namespace, App: app})
	if err != nil {
		return fmt.Errorf("diff of %s: reading its services: %w", app, err)
	}
	stored := map[string]*berthv1.ServiceSpec{}
	for _, s := range resp.GetServices() {
		if s.GetService().GetApp() == app {
			stored[s.GetService().GetName()] = s.GetService().GetSpec()
		}
	}
	color := colorOutput(w)
	for _, d := range diffServices(stored, services) {
		if color {
			d = colorDiffLine(d)
		}
		fmt.Fprintln(w, d)
	}
	return nil
}

// diffColors colour a diff line by its sign: added green, removed red,
// changed yellow.
var diffColors = map[byte]string{'+': colorGreen, '-': colorRed, '~': colorYellow}

// colorDiffLine colours a line of diffServices, keeping its indent plain.
func colorDiffLine(line string) string {
	body := strings.TrimLeft(line, " ")
	if body == "" {
		return line
	}
	c, ok := diffColors[body[0]]
	if !ok {
		return line
	}
	return line[:len(line)-len(body)] + c + body + colorReset
}

// diffServices returns the lines that say how services differ from the
// stored specs (by service name), services sorted by name.
func diffServices(stored map[string]*berthv1.ServiceSpec, services []*berthv1.Service) []string {
	want := map[string]*berthv1.ServiceSpec{}
	for _, s := range services {
		want[s.GetName()] = s.GetSpec()
	}
	names := slices.Sorted(maps.Keys(want))
	for name := range stored {
		if _, ok := want[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var out []string
	for _, name := range names {
		cur, had := stored[name]
		next, wanted := want[name]
		switch {
		case !wanted:
			out = append(out, "- service "+name)
		case !had:
			out = append(out, "+ service "+name)
			for _, l := range diffSpecs(nil, next) {
				out = append(out, "    "+l.String())
			}
		default:
			lines := diffSpecs(cur, next)
			if len(lines) == 0 {
				continue
			}
			out = append(out, "~ service "+name)
			for _, l := range lines {
				out = append(out, "    "+l.String())
			}
		}
	}
	return out
}

// diffSpecs compares a stored spec (nil for none) with a spec converted
// from Compose, normalized as the server will normalize it.
func diffSpecs(cur, next *berthv1.ServiceSpec) []diffLine {
	if cur == nil {
		cur = &berthv1.ServiceSpec{}
	}
	next = proto.Clone(next).(*berthv1.ServiceSpec)
	validation.Normalize(next)
	if next.ImageDigest == "" {
		// The server pins the digest when it applies: an unchanged image
		// keeps the stored one, a new one is resolved then. Neither is a
		// change to show here.
		next.ImageDigest = cur.ImageDigest
	}
	revision.KeepRestarts(next, cur)
	keepFileVersions(next.Secrets, cur.Secrets)
	keepFileVersions(next.Configs, cur.Configs)
	var out []diffLine
	diffMessage("", cur.ProtoReflect(), next.ProtoReflect(), &out)
	return out
}

// keepFileVersions gives the secrets or configs of a spec converted from
// Compose the version and digest of the stored spec's references of the
// same name: the server fills them when it applies, from the data it
// holds, and the CLI cannot tell a change of data from here.
func keepFileVersions(next, cur []*berthv1.FileReference) {
	for _, r := range next {
		if r.GetVersion() != 0 || r.GetDigest() != "" {
			continue
		}
		for _, c := range cur {
			if c.GetName() == r.GetName() {
				r.Version, r.Digest = c.GetVersion(), c.GetDigest()
				break
			}
		}
	}
}

// fileReference is the message a secret's or config's use is.
var fileReference = (&berthv1.FileReference{}).ProtoReflect().Descriptor()

// octalFields are numbers that are file modes, shown in octal.
var octalFields = map[protoreflect.FullName]bool{
	fileReference.Fields().ByName("mode").FullName():                                        true,
	(&berthv1.Mount{}).ProtoReflect().Descriptor().Fields().ByName("tmpfs_mode").FullName(): true,
}

// diffMessage appends the differences between a and b, messages of one
// type, naming fields below prefix.
func diffMessage(prefix string, a, b protoreflect.Message, out *[]diffLine) {
	fields := a.Descriptor().Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		name := string(f.Name())
		path := prefix + name
		if prefix == "" {
			if p, ok := composePaths[name]; ok {
				path = p
			}
		}
		switch {
		case f.IsMap():
			diffMap(path, f, a.Get(f).Map(), b.Get(f).Map(), out)
		case f.IsList() && prefix == "" && name == "env":
			diffEnv(path, a.Get(f).List(), b.Get(f).List(), out)
		case f.IsList() && f.Message() == fileReference:
			diffFileRefs(path, f, a.Get(f).List(), b.Get(f).List(), out)
		case f.IsList():
			diffList(path, f, a.Get(f).List(), b.Get(f).List(), argvFields[name], out)
		case f.Message() != nil && !isScalarMessage(f.Message()):
			if !a.Has(f) && !b.Has(f) {
				continue
			}
			diffMessage(path+".", a.Get(f).Message(), b.Get(f).Message(), out)
		default:
			diffScalar(path, f, a, b, out)
		}
	}
}

func diffScalar(path string, f protoreflect.FieldDescriptor, a, b protoreflect.Message, out *[]diffLine) {
	ha, hb := a.Has(f), b.Has(f)
	va, vb := a.Get(f), b.Get(f)
	if ha == hb && (!ha || sameValue(f, va, vb)) {
		return
	}
	l := diffLine{op: '~', path: path, old: formatValue(f, va), new: formatValue(f, vb)}
	switch {
	case !ha:
		l.op = '+'
	case !hb:
		l.op = '-'
	}
	*out = append(*out, l)
}

func diffMap(path string, f protoreflect.FieldDescriptor, a, b protoreflect.Map, out *[]diffLine) {
	keys := map[string]protoreflect.MapKey{}
	collect := func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys[k.String()] = k
		return true
	}
	a.Range(collect)
	b.Range(collect)
	vf := f.MapValue()
	for _, ks := range slices.Sorted(maps.Keys(keys)) {
		k := keys[ks]
		p := path + "." + ks
		ha, hb := a.Has(k), b.Has(k)
		switch {
		case !ha:
			*out = append(*out, diffLine{op: '+', path: p, new: formatValue(vf, b.Get(k))})
		case !hb:
			*out = append(*out, diffLine{op: '-', path: p, old: formatValue(vf, a.Get(k))})
		case !sameValue(vf, a.Get(k), b.Get(k)):
			*out = append(*out, diffLine{op: '~', path: p, old: formatValue(vf, a.Get(k)), new: formatValue(vf, b.Get(k))})
		}
	}
}

// diffEnv compares KEY=VALUE lists as maps: environment.FOO: "a" → "b".
func diffEnv(path string, a, b protoreflect.List, out *[]diffLine) {
	asMap := func(l protoreflect.List) map[string]string {
		m := make(map[string]string, l.Len())
		for i := range l.Len() {
			k, v, _ := strings.Cut(l.Get(i).String(), "=")
			m[k] = v
		}
		return m
	}
	ma, mb := asMap(a), asMap(b)
	keys := slices.Sorted(maps.Keys(ma))
	for k := range mb {
		if _, ok := ma[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		va, ha := ma[k]
		vb, hb := mb[k]
		p := path + "." + k
		switch {
		case !ha:
			*out = append(*out, diffLine{op: '+', path: p, new: strconv.Quote(vb)})
		case !hb:
			*out = append(*out, diffLine{op: '-', path: p, old: strconv.Quote(va)})
		case va != vb:
			*out = append(*out, diffLine{op: '~', path: p, old: strconv.Quote(va), new: strconv.Quote(vb)})
		}
	}
}

// diffFileRefs compares uses of secrets or configs by name (by name and
// target when a name is used twice): one used in both shows each field
// that changes, "~ secrets.shop_pw.mode: 0444 → 0400"; one added or
// removed shows as its name, version and digest.
func diffFileRefs(path string, f protoreflect.FieldDescriptor, a, b protoreflect.List, out *[]diffLine) {
	twice := map[string]bool{}
	for _, l := range []protoreflect.List{a, b} {
		seen := map[string]bool{}
		for i := range l.Len() {
			name := fileRefName(l.Get(i))
			twice[name] = twice[name] || seen[name]
			seen[name] = true
		}
	}
	ka, kb := fileRefKeys(a, twice), fileRefKeys(b, twice)
	for i := range a.Len() {
		if _, ok := kb.index[ka.keys[i]]; !ok {
			*out = append(*out, diffLine{op: '-', path: path, old: formatValue(f, a.Get(i))})
		}
	}
	for i := range b.Len() {
		j, ok := ka.index[kb.keys[i]]
		if !ok {
			*out = append(*out, diffLine{op: '+', path: path, new: formatValue(f, b.Get(i))})
			continue
		}
		diffMessage(path+"."+kb.keys[i]+".", a.Get(j).Message(), b.Get(i).Message(), out)
	}
}

// fileRefKeyed are the keys that tell a list's references apart.
type fileRefKeyed struct {
	keys  []string
	index map[string]int
}

// fileRefKeys keys a list's references by name, and by name and target
// for the names twice says are used twice.
func fileRefKeys(l protoreflect.List, twice map[string]bool) fileRefKeyed {
	k := fileRefKeyed{index: map[string]int{}}
	for i := range l.Len() {
		key := fileRefName(l.Get(i))
		if twice[key] {
			key += "[" + l.Get(i).Message().Interface().(*berthv1.FileReference).GetTarget() + "]"
		}
		k.keys = append(k.keys, key)
		k.index[key] = i
	}
	return k
}

func fileRefName(v protoreflect.Value) string {
	return v.Message().Interface().(*berthv1.FileReference).GetName()
}

// diffList shows the items removed from a and added to b; a list whose
// order carries its meaning (whole) shows as one change of all of it.
func diffList(path string, f protoreflect.FieldDescriptor, a, b protoreflect.List, whole bool, out *[]diffLine) {
	if sameList(f, a, b) {
		return
	}
	if whole {
		l := diffLine{op: '~', path: path, old: formatList(f, a), new: formatList(f, b)}
		switch {
		case a.Len() == 0:
			l.op = '+'
		case b.Len() == 0:
			l.op = '-'
		}
		*out = append(*out, l)
		return
	}
	removed, added := listChanges(f, a, b), listChanges(f, b, a)
	for _, v := range removed {
		*out = append(*out, diffLine{op: '-', path: path, old: formatValue(f, v)})
	}
	for _, v := range added {
		*out = append(*out, diffLine{op: '+', path: path, new: formatValue(f, v)})
	}
	if len(removed) == 0 && len(added) == 0 {
		// The same items in another order.
		*out = append(*out, diffLine{op: '~', path: path, old: formatList(f, a), new: formatList(f, b)})
	}
}

// listChanges returns the items of a that b lacks, counting repeats.
func listChanges(f protoreflect.FieldDescriptor, a, b protoreflect.List) []protoreflect.Value {
	used := make([]bool, b.Len())
	var out []protoreflect.Value
	for i := range a.Len() {
		found := false
		for j := range b.Len() {
			if !used[j] && sameValue(f, a.Get(i), b.Get(j)) {
				used[j], found = true, true
				break
			}
		}
		if !found {
			out = append(out, a.Get(i))
		}
	}
	return out
}

func sameList(f protoreflect.FieldDescriptor, a, b protoreflect.List) bool {
	if a.Len() != b.Len() {
		return false
	}
	for i := range a.Len() {
		if !sameValue(f, a.Get(i), b.Get(i)) {
			return false
		}
	}
	return true
}

// sameValue compares two values of field (or map value) f.
func sameValue(f protoreflect.FieldDescriptor, a, b protoreflect.Value) bool {
	if f.Message() != nil {
		return proto.Equal(a.Message().Interface(), b.Message().Interface())
	}
	return a.Equal(b)
}

// isScalarMessage reports whether values of message type md read as one
// value (a duration) rather than as fields.
func isScalarMessage(md protoreflect.MessageDescriptor) bool {
	return md.FullName() == "google.protobuf.Duration"
}

func formatList(f protoreflect.FieldDescriptor, l protoreflect.List) string {
	items := make([]string, l.Len())
	for i := range l.Len() {
		items[i] = formatValue(f, l.Get(i))
	}
	return "[" + strings.Join(items, ", ") + "]"
}

// formatValue writes one value of field f for people: strings quoted,
// enums by their short lower-case name, durations as 1m30s, messages as
// {field: value, ...} with their set fields.
func formatValue(f protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch f.Kind() {
	case protoreflect.StringKind:
		return strconv.Quote(v.String())
	case protoreflect.BytesKind:
		return fmt.Sprintf("%d bytes", len(v.Bytes()))
	case protoreflect.EnumKind:
		return enumName(f.Enum(), v.Enum())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		m := v.Message()
		if isScalarMessage(f.Message()) {
			d, _ := m.Interface().(*durationpb.Duration)
			return d.AsDuration().String()
		}
		var parts []string
		fields := m.Descriptor().Fields()
		for i := range fields.Len() {
			sf := fields.Get(i)
			if !m.Has(sf) || (f.Message() == fileReference && !fileRefSummary[sf.Name()]) {
				continue
			}
			var s string
			switch {
			case sf.IsList():
				s = formatList(sf, m.Get(sf).List())
			case sf.IsMap():
				s = fmt.Sprintf("%d entries", m.Get(sf).Map().Len())
			default:
				s = formatValue(sf, m.Get(sf))
			}
			parts = append(parts, string(sf.Name())+": "+s)
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	if octalFields[f.FullName()] {
		return fmt.Sprintf("0%o", v.Uint())
	}
	return v.String()
}

// fileRefSummary are the fields a secret's or config's use shows as a
// whole: what it is, never more.
var fileRefSummary = map[protoreflect.Name]bool{"name": true, "version": true, "digest": true}

// enumName is an enum value's name without its type's prefix, in lower
// case: SERVICE_MODE_GLOBAL is "global".
func enumName(ed protoreflect.EnumDescriptor, n protoreflect.EnumNumber) string {
	vd := ed.Values().ByNumber(n)
	if vd == nil {
		return strconv.Itoa(int(n))
	}
	name := string(vd.Name())
	if first := ed.Values().Get(0); first != nil {
		if p, ok := strings.CutSuffix(string(first.Name()), "UNSPECIFIED"); ok {
			name = strings.TrimPrefix(name, p)
		}
	}
	return strings.ToLower(name)
}
