package revision

import (
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// ChangedFields names the top-level fields that differ between specs a and
// b, by their proto names ("image", "healthcheck"), in field order; nil
// when they are equal.
func ChangedFields(a, b *berthv1.ServiceSpec) []string {
	var out []string
	ra, rb := a.ProtoReflect(), b.ProtoReflect()
	fields := ra.Descriptor().Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if !sameField(f, ra, rb) {
			out = append(out, string(f.Name()))
		}
	}
	return out
}

// sameField compares one field of two specs by copying it alone into
// empty specs, so that proto.Equal's rules (maps, NaN, unknown fields)
// apply to it.
func sameField(f protoreflect.FieldDescriptor, a, b protoreflect.Message) bool {
	if a.Has(f) != b.Has(f) {
		return false
	}
	if !a.Has(f) {
		return true
	}
	ma, mb := (&berthv1.ServiceSpec{}).ProtoReflect(), (&berthv1.ServiceSpec{}).ProtoReflect()
	ma.Set(f, a.Get(f))
	mb.Set(f, b.Get(f))
	return proto.Equal(ma.Interface(), mb.Interface())
}

// inPlaceFields are the spec fields whose change makes no new spec
// version. Only a change to what the tasks run, or where, makes new
// tasks: replicas scale the tasks that exist, dependencies gate starts
// only, and the update and rollback configs say how to roll out the next
// change.
var inPlaceFields = map[string]bool{
	"replicas":        true,
	"depends_on":      true,
	"update_config":   true,
	"rollback_config": true,
}

// NeedsNewVersion reports whether a change of the fields named (as
// ChangedFields names them) makes a new spec version, rolled out as new
// tasks; false when every one of them is changed in place.
func NeedsNewVersion(fields []string) bool {
	for _, f := range fields {
		if !inPlaceFields[f] {
			return true
		}
	}
	return false
}

// keepInPlaceFields copies into spec the fields of cur whose change makes
// no spec version, so that returning to an earlier spec leaves them as
// they are: a revision does not own them. The replicas stay only when the
// mode is the same, since a global service has none.
func keepInPlaceFields(spec, cur *berthv1.ServiceSpec) {
	if spec.GetMode() == cur.GetMode() {
		spec.Replicas = cur.GetReplicas()
	}
	spec.DependsOn = cur.GetDependsOn()
	spec.UpdateConfig = cur.GetUpdateConfig()
	spec.RollbackConfig = cur.GetRollbackConfig()
}
