package cli

import (
	"bytes"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestPrintServiceStorage(t *testing.T) {
	var b bytes.Buffer
	printServiceStorage(&b, &berthv1.ServiceSpec{})
	if b.Len() != 0 {
		t.Fatalf("a service without mounts printed %q", b.String())
	}
	printServiceStorage(&b, &berthv1.ServiceSpec{
		Mounts: []*berthv1.Mount{
			{Type: berthv1.MountType_MOUNT_TYPE_VOLUME, Source: "shop_data", Target: "/data", NoCopy: true},
			{Type: berthv1.MountType_MOUNT_TYPE_BIND, Source: "/srv/logs", Target: "/logs", ReadOnly: true},
			{Type: berthv1.MountType_MOUNT_TYPE_TMPFS, Target: "/cache", TmpfsSize: 64 << 20},
		},
		Secrets: []*berthv1.FileReference{{Name: "shop_pw", Target: "/run/secrets/pw", Mode: 0o400, Version: 2, Digest: "hmac-sha256:ab12"}},
		Configs: []*berthv1.FileReference{{Name: "shop_conf", Target: "/etc/app.conf", Mode: 0o444, Version: 1, Digest: "sha256:cd34"}},
	})
	want := `Mounts:
  TARGET            KIND     SOURCE           OPTIONS
  /data             volume   shop_data.SLOT   nocopy
  /logs             bind     /srv/logs        read-only
  /cache            tmpfs    -                size 64MiB
  /run/secrets/pw   secret   shop_pw          version 2, 0:0, mode 0400, hmac-sha256:ab12
  /etc/app.conf     config   shop_conf        version 1, 0:0, mode 0444, sha256:cd34
`
	if got := b.String(); got != want {
		t.Errorf("storage section:\n%s\nwant:\n%s", got, want)
	}

	// A global service has a volume per node.
	b.Reset()
	printServiceStorage(&b, &berthv1.ServiceSpec{
		Mode:   berthv1.ServiceMode_SERVICE_MODE_GLOBAL,
		Mounts: []*berthv1.Mount{{Source: "shop_logs", Target: "/logs"}},
	})
	if got := b.String(); !strings.Contains(got, "/logs    volume   shop_logs.NODE") {
		t.Errorf("global service's volume:\n%s", got)
	}
}
