package apiserver

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestImageSourceAndPushNode(t *testing.T) {
	s := newRegistryServer(t, "127.0.0.1:5000")
	putNode(t, s, "n1", map[string]string{"127.0.0.1:5000/app:1": digestA})
	putNode(t, s, "n2", map[string]string{"busybox:latest": digestA})

	src := s.imageSource("127.0.0.1:5000/app:1", "127.0.0.1:5000/app:1", "n2")
	if !src.Insecure || len(src.Peers) != 1 || src.Peers[0] != "n1:7000" {
		t.Errorf("imageSource for n2 = %v", src)
	}
	if src := s.imageSource("127.0.0.1:5000/app:1", "127.0.0.1:5000/app:1", "n1"); len(src.Peers) != 0 {
		t.Errorf("a node is its own peer: %v", src)
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
