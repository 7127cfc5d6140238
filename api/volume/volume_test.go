package volume

import (
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestIsNamed(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mount *berthv1.Mount
		want  bool
	}{
		{"volume with a source", &berthv1.Mount{Type: berthv1.MountType_MOUNT_TYPE_VOLUME, Source: "shop_data"}, true},
		{"unspecified type reads as volume", &berthv1.Mount{Source: "shop_data"}, true},
		{"scratch volume", &berthv1.Mount{Type: berthv1.MountType_MOUNT_TYPE_VOLUME}, false},
		{"bind", &berthv1.Mount{Type: berthv1.MountType_MOUNT_TYPE_BIND, Source: "/srv"}, false},
		{"tmpfs", &berthv1.Mount{Type: berthv1.MountType_MOUNT_TYPE_TMPFS}, false},
	} {
		if got := IsNamed(tc.mount); got != tc.want {
			t.Errorf("%s: IsNamed = %v, want %v", tc.name, got, tc.want)
		}
		if got := HasNamed(&berthv1.ServiceSpec{Mounts: []*berthv1.Mount{tc.mount}}); got != tc.want {
			t.Errorf("%s: HasNamed = %v, want %v", tc.name, got, tc.want)
		}
	}
	if HasNamed(&berthv1.ServiceSpec{}) {
		t.Error("a spec without mounts has a named volume")
	}
}

func TestName(t *testing.T) {
	if got := Name("shop_data", 3, "n1"); got != "shop_data.3" {
		t.Errorf("slot 3: %s", got)
	}
	if got := Name("shop_data", 0, "n1"); got != "shop_data.n1" {
		t.Errorf("global: %s", got)
	}
}
