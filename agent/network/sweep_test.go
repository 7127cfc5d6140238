package network

import (
	"slices"
	"testing"

	"github.com/berthproject/berth/agent/network/nspath"
)

// Attached lists attached containers and namespaces left without a record
// (a crash before the record was written), not other nodes' namespaces;
// Detach removes the orphan namespace.
func TestNodeAttachedFindsOrphanNamespaces(t *testing.T) {
	tn := newTestNode(t)
	tn.mustAttach(spec("kept", "10.128.0.5/24"))
	orphan := tn.netnsPath("orphan")
	if err := nspath.Create(orphan); err != nil {
		t.Fatal(err)
	}
	other := netnsPrefix("another-node") + "theirs"
	if err := nspath.Create(tn.cfg.NetNSDir + "/" + other); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nspath.Remove(tn.cfg.NetNSDir + "/" + other) })

	ids, err := tn.n.Attached()
	if err != nil || !slices.Equal(ids, []string{"kept", "orphan"}) {
		t.Fatalf("Attached() = %v, %v; want [kept orphan]", ids, err)
	}
	tn.mustDetach("orphan")
	if alive, _ := nspath.IsNetNS(orphan); alive {
		t.Error("the orphan namespace is still mounted after Detach")
	}
	ids, err = tn.n.Attached()
	if err != nil || !slices.Equal(ids, []string{"kept"}) {
		t.Fatalf("Attached() after Detach = %v, %v; want [kept]", ids, err)
	}
}
