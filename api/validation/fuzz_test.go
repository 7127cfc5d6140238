package validation

import (
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/protobuf/proto"
)

// FuzzValidateSpec feeds arbitrary service specs (any protobuf encoding
// of one) to ValidateSpec and Normalize: neither may panic, validation
// must be deterministic, and a spec it accepts must still be accepted once
// normalized, as the server normalizes before it validates again.
func FuzzValidateSpec(f *testing.F) {
	global := validSpec()
	global.Mode, global.Placement.MaxReplicasPerNode = berthv1.ServiceMode_SERVICE_MODE_GLOBAL, 0
	huge := validSpec()
	huge.Replicas = 100000000000
	for _, s := range []*berthv1.ServiceSpec{validSpec(), global, huge, {Image: "busybox", Ports: []*berthv1.PortSpec{{Target: 80}}}, {}} {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		spec := &berthv1.ServiceSpec{}
		if proto.Unmarshal(data, spec) != nil {
			return
		}
		first := ValidateSpec("web", spec)
		if again := ValidateSpec("web", spec); len(again) != len(first) {
			t.Fatalf("ValidateSpec is not deterministic: %v then %v", first, again)
		}
		Normalize(spec)
		after := ValidateSpec("web", spec)
		if len(first) == 0 && len(after) > 0 {
			t.Fatalf("a valid spec is invalid once normalized: %v", after)
		}
	})
}
