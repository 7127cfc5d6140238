package access_test

import (
	"strings"
	"testing"

	"github.com/berthproject/berth/api/access"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// served lists every method of Berth's gRPC services, read from the
// compiled proto descriptors.
func served() map[string]bool {
	out := map[string]bool{}
	for _, f := range []protoreflect.FileDescriptor{
		berthv1.File_berth_v1_cluster_proto, berthv1.File_berth_v1_agent_proto, berthv1.File_berth_v1_node_proto,
	} {
		for i := range f.Services().Len() {
			svc := f.Services().Get(i)
			for j := range svc.Methods().Len() {
				out["/"+string(svc.FullName())+"/"+string(svc.Methods().Get(j).Name())] = true
			}
		}
	}
	return out
}

func TestEveryMethodHasARule(t *testing.T) {
	methods := served()
	for _, svc := range []string{"ClusterService", "AgentService", "NodeService"} {
		n := 0
		for m := range methods {
			if strings.HasPrefix(m, "/berth.v1."+svc+"/") {
				n++
			}
		}
		if n == 0 {
			t.Errorf("no method of %s found in the descriptors", svc)
		}
	}
	for m := range methods {
		if _, ok := access.Methods[m]; !ok {
			t.Errorf("%s has no entry in access.Methods: add one saying which role may call it", m)
		}
	}
	for m := range access.Methods {
		if !methods[m] {
			t.Errorf("access.Methods names %s, which no service has", m)
		}
	}
}

func TestCheckUnknownMethodRefused(t *testing.T) {
	admin := access.Principal{Kind: "user", Name: "admin", Role: identity.RoleAdmin}
	if err := access.Check(admin, "/berth.v1.ClusterService/Nope", ""); err == nil {
		t.Error("an unknown method was allowed")
	}
}

func TestCovers(t *testing.T) {
	p := func(r identity.Role, ns ...string) access.Principal { return access.Principal{Role: r, Namespaces: ns} }
	cases := []struct {
		name string
		a, b access.Principal
		want bool
	}{
		{"same", p(identity.RoleDeployer, "a"), p(identity.RoleDeployer, "a"), true},
		{"lower role", p(identity.RoleDeployer, "a"), p(identity.RoleViewer, "a"), true},
		{"higher role", p(identity.RoleDeployer, "a"), p(identity.RoleAdmin, "a"), false},
		{"other namespace", p(identity.RoleDeployer, "a"), p(identity.RoleViewer, "b"), false},
		{"every namespace from one", p(identity.RoleDeployer, "a"), p(identity.RoleViewer), false},
		{"one from every", p(identity.RoleDeployer), p(identity.RoleDeployer, "b"), true},
		{"node makes a viewer", p(identity.RoleNode), p(identity.RoleViewer), false},
	}
	for _, c := range cases {
		if got := c.a.Covers(c.b); got != c.want {
			t.Errorf("%s: Covers = %v, want %v", c.name, got, c.want)
		}
	}
}

// BenchmarkCheck is the table's cost on every call: a namespaced method
// for a deployer of two namespaces.
func BenchmarkCheck(b *testing.B) {
	p := access.Principal{Kind: "token", Name: "ci", Role: identity.RoleDeployer, Namespaces: []string{"team-a", "team-b"}}
	for b.Loop() {
		if err := access.Check(p, "/berth.v1.ClusterService/ScaleService", "team-b"); err != nil {
			b.Fatal(err)
		}
	}
}
