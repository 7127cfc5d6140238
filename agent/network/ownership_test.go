package network

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/berthproject/berth/agent/network/nspath"
	"github.com/vishvananda/netlink"
)

// TestNodeRestartCleansItsOwnLeftovers restarts a node over what an
// earlier run of it left outside its records: a container's namespace
// (with its veth) whose record was lost. The new run removes it, keeps
// the attached container, and a namespace of another node's prefix is
// left alone.
func TestNodeRestartCleansItsOwnLeftovers(t *testing.T) {
	tn := newTestNode(t)
	kept := tn.mustAttach(spec("kept", "10.128.0.5/24"))
	lost := tn.mustAttach(spec("lost", "10.128.0.6/24"))
	tn.stop()
	// The record of "lost" is gone with part of the data directory; its
	// namespace and veth stay.
	if err := os.Remove(filepath.Join(tn.recordDir(), "lost"+recordExt)); err != nil {
		t.Fatal(err)
	}
	// Namespaces of another node, and of a node of the same name
	// elsewhere (its veth is not here), stay.
	other := filepath.Join(tn.cfg.NetNSDir, netnsPrefix("another-node")+"x")
	sameName := tn.netnsPath("elsewhere")
	for _, p := range []string{other, sameName} {
		if err := nspath.Create(p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nspath.Remove(p) })
	}

	tn.start()
	if ok, _ := nspath.IsNetNS(lost.NetNSPath); ok {
		t.Errorf("the namespace %s an earlier run left is still there", lost.NetNSPath)
	}
	if ok, err := nspath.IsNetNS(kept.NetNSPath); !ok || err != nil {
		t.Errorf("the attached container's namespace %s is gone (%v)", kept.NetNSPath, err)
	}
	for _, p := range []string{other, sameName} {
		if ok, err := nspath.IsNetNS(p); !ok || err != nil {
			t.Errorf("namespace %s, not this node's, was removed (%v)", p, err)
		}
	}
	if veths := tn.links("bv"); len(veths) != 1 || veths[0] != hostVethName("kept", 0) {
		t.Errorf("veths after the restart = %v, want only %s", veths, hostVethName("kept", 0))
	}
	tn.mustDetach("kept")
	for _, p := range []string{other, sameName} {
		if err := nspath.Remove(p); err != nil {
			t.Error(err)
		}
	}
}

// TestInterfaceAddresses lists the node's device with its address, and a
// bridge something else made in the node's subnet.
func TestInterfaceAddresses(t *testing.T) {
	tn := newTestNode(t)
	h := handleIn(t, tn.ns)
	subnet := netip.MustParsePrefix(tn.cfg.Subnet)
	foreign := netip.PrefixFrom(subnet.Addr().Next().Next(), 24)
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-x"}}
	if err := h.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(br, &netlink.Addr{IPNet: ipNet(foreign)}); err != nil {
		t.Fatal(err)
	}
	var got []InterfaceAddress
	must(t, tn.ns, func() (err error) {
		got, err = InterfaceAddresses()
		return err
	})
	want := map[InterfaceAddress]bool{
		{Interface: DeviceName(tn.cfg.Name), Kind: "vxlan", Prefix: netip.PrefixFrom(subnet.Addr().Next(), 32)}: false,
		{Interface: "br-x", Kind: "bridge", Prefix: foreign}:                                                    false,
	}
	for _, a := range got {
		if _, ok := want[a]; ok {
			want[a] = true
		}
	}
	for a, seen := range want {
		if !seen {
			t.Errorf("InterfaceAddresses() = %v, lacks %v", got, a)
		}
	}
}
