package nodecheck

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestEvalRuntime(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		ok   bool
		want string
	}{
		{"answers", nil, true, ""},
		{"down", errors.New("connection refused"), false, "containerd at /run/c.sock does not answer (connection refused): start containerd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := EvalRuntime("/run/c.sock", tc.err)
			if r.Type != "runtime" || r.OK != tc.ok || !strings.Contains(r.Message, tc.want) {
				t.Fatalf("EvalRuntime = %+v; want ok %v, message with %q", r, tc.ok, tc.want)
			}
		})
	}
}

func TestEvalNetwork(t *testing.T) {
	subnet := netip.MustParsePrefix("10.210.1.0/24")
	own := Holder{Interface: "berth-abc", Kind: "vxlan", Prefix: netip.MustParsePrefix("10.210.1.1/32")}
	lan := Holder{Interface: "eth0", Kind: "veth", Prefix: netip.MustParsePrefix("10.252.0.10/24")}
	wide := Holder{Interface: "eth1", Kind: "device", Prefix: netip.MustParsePrefix("10.0.0.5/8")}
	bridge := Holder{Interface: "br-x", Kind: "bridge", Prefix: netip.MustParsePrefix("10.210.1.1/24")}
	other := Holder{Interface: "dummy0", Kind: "dummy", Prefix: netip.MustParsePrefix("10.210.1.77/32")}
	for _, tc := range []struct {
		name    string
		facts   NetworkFacts
		err     error
		judged  bool
		ok      bool
		message []string
	}{
		{"no subnet yet", NetworkFacts{Own: "berth-abc", Holders: []Holder{bridge}}, nil, false, false, nil},
		{"own device only", NetworkFacts{Subnet: subnet, Own: "berth-abc", Holders: []Holder{own, lan}}, nil, true, true, nil},
		{"wider network elsewhere", NetworkFacts{Subnet: subnet, Own: "berth-abc", Holders: []Holder{own, wide}}, nil, true, true, nil},
		{"foreign bridge", NetworkFacts{Subnet: subnet, Own: "berth-abc", Holders: []Holder{own, bridge}}, nil, true, false,
			[]string{"container subnet 10.210.1.0/24 is held by interface br-x (a bridge, 10.210.1.1/24)", "not by this node's device berth-abc", "ip link del br-x"}},
		{"two foreign", NetworkFacts{Subnet: subnet, Own: "berth-abc", Holders: []Holder{bridge, other}}, nil, true, false,
			[]string{"br-x", "and 1 more"}},
		{"probe fails", NetworkFacts{Subnet: subnet, Own: "berth-abc"}, errors.New("netlink: permission denied"), true, false,
			[]string{"cannot list the node's interfaces", "permission denied"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, judged := EvalNetwork(tc.facts, tc.err)
			if judged != tc.judged {
				t.Fatalf("judged = %v, want %v", judged, tc.judged)
			}
			if !judged {
				return
			}
			if r.Type != "network" || r.OK != tc.ok {
				t.Fatalf("EvalNetwork = %+v; want ok %v", r, tc.ok)
			}
			for _, m := range tc.message {
				if !strings.Contains(r.Message, m) {
					t.Errorf("message %q lacks %q", r.Message, m)
				}
			}
		})
	}
}

func TestParseFloor(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Floor
		bad  bool
	}{
		{"5%", Floor{Percent: 5}, false},
		{"0.5 %", Floor{Percent: 0.5}, false},
		{"500MiB", Floor{Amount: 500 << 20}, false},
		{"2G", Floor{Amount: 2 << 30}, false},
		{"1GB", Floor{Amount: 1e9}, false},
		{"100000", Floor{Amount: 100000}, false},
		{"0", Floor{}, false},
		{"100%", Floor{}, true},
		{"-1%", Floor{}, true},
		{"lots", Floor{}, true},
		{"5 parsecs", Floor{}, true},
	} {
		got, err := ParseFloor(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("ParseFloor(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestEvalDisk(t *testing.T) {
	const gib = 1 << 30
	bytesFloor, inodeFloor := Floor{Amount: 500 << 20}, Floor{Percent: 5}
	for _, tc := range []struct {
		name    string
		facts   DiskFacts
		err     error
		bytes   Floor
		ok      bool
		message string
	}{
		{"room", DiskFacts{Path: "/d", Total: 10 * gib, Free: 5 * gib, Inodes: 1000, FreeInodes: 900}, nil, bytesFloor, true, ""},
		{"bytes below floor", DiskFacts{Path: "/d", Total: 10 * gib, Free: 100 << 20, Inodes: 1000, FreeInodes: 900}, nil, bytesFloor, false,
			"the file system of /d (10.0 GiB) has less than 500.0 MiB free (--disk-floor 524288000)"},
		{"bytes at floor", DiskFacts{Path: "/d", Total: 10 * gib, Free: 500 << 20, Inodes: 1000, FreeInodes: 900}, nil, bytesFloor, true, ""},
		{"percent floor", DiskFacts{Path: "/d", Total: 10 * gib, Free: gib / 2, Inodes: 1000, FreeInodes: 900}, nil, Floor{Percent: 10}, false, "(--disk-floor 10%)"},
		{"inodes below floor", DiskFacts{Path: "/d", Total: 10 * gib, Free: 5 * gib, Inodes: 1000, FreeInodes: 49}, nil, bytesFloor, false,
			"fewer than 50 free inodes (--inode-floor 5%)"},
		{"no inode count", DiskFacts{Path: "/d", Total: 10 * gib, Free: 5 * gib}, nil, bytesFloor, true, ""},
		{"statfs fails", DiskFacts{Path: "/d"}, errors.New("no such file or directory"), bytesFloor, false, "cannot read the free space of /d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := EvalDisk(tc.facts, tc.err, tc.bytes, inodeFloor)
			if r.Type != "disk" || r.OK != tc.ok || !strings.Contains(r.Message, tc.message) {
				t.Fatalf("EvalDisk = %+v; want ok %v, message with %q", r, tc.ok, tc.message)
			}
		})
	}
}

func TestPointsAtCondition(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("write /var/lib/x: no space left on device"), true},
		{errors.New("rpc error: code = Unavailable desc = connection error"), true},
		{errors.New("network: attach abc: create veth: file exists"), true},
		{errors.New("image app:1 not found"), false},
		{errors.New("exec: \"/app\": permission denied"), false},
	} {
		if got := PointsAtCondition(tc.err); got != tc.want {
			t.Errorf("PointsAtCondition(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
