package audit

import (
	"strconv"
	"strings"
	"unicode"

	"github.com/berthproject/berth/api/access"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// maxName bounds each name a target holds.
const maxName = 128

// describe reads the namespace a request names and what it acts on ("app
// web", "service web/api", "node beta", "token ci"), from the request's
// fields by name, so that new methods are described without a change
// here. Only identifying fields are read: never data, passwords or tokens.
//
// A stream's first message wraps its header in a oneof (ExecRequest.start,
// BuildRequest.header): the header is read instead.
func describe(method string, req proto.Message) (namespace, target string) {
	m := header(req.ProtoReflect())
	namespace = stringField(m, "namespace")
	app, service := stringField(m, "app"), stringField(m, "service")
	switch {
	case app != "" && service != "":
		return namespace, "service " + app + "/" + service
	case app != "":
		return namespace, "app " + app
	}
	for _, f := range []struct {
		field protoreflect.Name
		kind  string
	}{
		{"task_id", "task"},
		{"image", "image"},
		{"tags", "image"},
		{"node", "node"},
		{"node_name", "node"},
		{"registry", "registry"},
	} {
		if v := stringField(m, f.field); v != "" {
			return namespace, f.kind + " " + v
		}
	}
	// Otherwise the method's noun names the kind (CreateSecret: "secret"),
	// and a field "name", or one named after the noun (RevokeAPIToken's
	// token, its id or name), the object.
	if noun := nounOf(access.ShortName(method)); noun != "" {
		for _, field := range []string{"name", noun} {
			if v := stringField(m, protoreflect.Name(field)); v != "" {
				return namespace, noun + " " + v
			}
		}
	}
	return namespace, ""
}

// header is the message set in m's oneof when that is a message (a
// stream's header), else m.
func header(m protoreflect.Message) protoreflect.Message {
	oneofs := m.Descriptor().Oneofs()
	for i := 0; i < oneofs.Len(); i++ {
		fd := m.WhichOneof(oneofs.Get(i))
		if fd != nil && fd.Kind() == protoreflect.MessageKind {
			return m.Get(fd).Message()
		}
	}
	return m
}

// stringField is m's string field name (the first element of a repeated
// one), cut to maxName; empty when m has no such field.
func stringField(m protoreflect.Message, name protoreflect.Name) string {
	fd := m.Descriptor().Fields().ByName(name)
	if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsMap() {
		return ""
	}
	var v string
	if fd.IsList() {
		list := m.Get(fd).List()
		if list.Len() == 0 {
			return ""
		}
		v = list.Get(0).String()
		if list.Len() > 1 {
			return truncate(v, maxName) + " (+" + strconv.Itoa(list.Len()-1) + ")"
		}
	} else {
		v = m.Get(fd).String()
	}
	return truncate(v, maxName)
}

// nounOf is what a method acts on, from its name: the words after the
// verb, lower case ("CreateAPIToken" is "token", "RemoveNamespace" is
// "namespace"); empty for a one-word name.
func nounOf(method string) string {
	i := strings.IndexFunc(method[min(1, len(method)):], unicode.IsUpper)
	if i < 0 {
		return ""
	}
	noun := strings.TrimPrefix(method[i+1:], "API")
	return strings.ToLower(noun)
}
