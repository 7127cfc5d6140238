package apiserver

import (
	"testing"

	"github.com/berthproject/berth/api/identity"
	"github.com/berthproject/berth/controlplane/ca"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestImageSourceAndPushNode(t *testing.T) {
	s := newRegistryServer(t, "127.0.0.1:5000")
	putNode(t, s, "n1", map[string]string{"127.0.0.1:5000/app:1": digestA})
	putNode(t, s, "n2", map[string]string{"busybox:latest": digestA})

	auth, err := ca.Open(t.Context(), &memCA{}, testKEK(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.cfg.Authority = auth
	verifier, err := identity.NewPullGrantVerifier(auth.CACertPEM())
	if err != nil {
		t.Fatal(err)
	}

	// Both nodes hold digestA (under different names): a pinned pull may
	// fetch it from the other, with a grant for the puller.
	src := s.imageSource("127.0.0.1:5000/app:1", digestA, "n2")
	if !src.Insecure || len(src.Peers) != 1 || src.Peers[0] != "n1:7000" || len(src.PullGrants) != 1 {
		t.Fatalf("imageSource for n2 = %v", src)
	}
	if g, err := verifier.Verify(src.PullGrants[0], "n2"); err != nil || g.Digest != digestA {
		t.Errorf("the grant for n2: %v, %v", g, err)
	}
	if src := s.imageSource("127.0.0.1:5000/app:1", digestA, "n1"); len(src.Peers) != 1 || src.Peers[0] != "n2:7000" {
		t.Errorf("imageSource for n1 = %v (a node is not its own peer)", src)
	}
	// A tag alone gets no peers, though n1 reports holding it.
	if src := s.imageSource("127.0.0.1:5000/app:1", "", "n2"); len(src.Peers) != 0 || len(src.PullGrants) != 0 || !src.Insecure {
		t.Errorf("unpinned imageSource = %v, want the registry only", src)
	}

	if n, err := s.pushNode("", "docker.io/library/busybox:latest"); err != nil || n.Name != "n2" {
		t.Errorf("pushNode = %v, %v", n, err)
	}
	if _, err := s.pushNode("", "docker.io/library/nginx:latest"); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("pushNode of an image no node holds = %v", err)
	}
	if _, err := s.pushNode("n9", "docker.io/library/busybox:latest"); status.Code(err) != codes.NotFound {
		t.Errorf("pushNode of an unknown node = %v", err)
	}
	for _, bad := range []string{"", "Not A Ref"} {
		if _, err := normalizedImage(bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("normalizedImage(%q) = %v", bad, err)
		}
	}
}
