package dispatcher

import (
	"context"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"log/slog"
	"slices"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestImageSources(t *testing.T) {
	const digest = "sha256:1111"
	ready := berthv1.NodeStatus_NODE_STATUS_READY
	node := func(id, name, addr string, status berthv1.NodeStatus, images []string, digests map[string]string) *berthv1.Node {
		return &berthv1.Node{Meta: &berthv1.Meta{Id: id}, Name: name, ContentAddress: addr, Status: status, Images: images, ImageDigests: digests}
	}
	nodes := []*berthv1.Node{ // in name order, as the cache lists them
		node("n1", "alpha", "10.0.0.1:1", ready, []string{"docker.io/library/busybox:latest", "registry.local/web:1"}, map[string]string{"docker.io/library/busybox:latest": "sha256:bb", "registry.local/web:1": "sha256:old"}),
		node("n2", "beta", "10.0.0.2:1", ready, []string{"docker.io/library/busybox:latest"}, map[string]string{"docker.io/library/busybox:latest": "sha256:bb"}),
		node("n3", "delta", "10.0.0.3:1", berthv1.NodeStatus_NODE_STATUS_DOWN, []string{"docker.io/library/busybox:latest"}, map[string]string{"docker.io/library/busybox:latest": "sha256:bb"}),
		node("n4", "epsilon", "", ready, []string{"docker.io/library/busybox:latest"}, map[string]string{"docker.io/library/busybox:latest": "sha256:bb"}),
		node("n5", "gamma", "10.0.0.5:1", ready, []string{"docker.io/library/busybox:latest", "registry.local/web:2"}, map[string]string{"docker.io/library/busybox:latest": "sha256:bb", "registry.local/web:2": digest}),
		node("n6", "kappa", "10.0.0.6:1", ready, []string{"docker.io/library/busybox:latest"}, map[string]string{"docker.io/library/busybox:latest": "sha256:bb"}),
		node("n7", "zeta", "10.0.0.7:1", ready, []string{"docker.io/library/busybox:latest"}, map[string]string{"docker.io/library/busybox:latest": "sha256:bb"}),
	}
	idx := buildPeerIndex(nodes)
	task := func(image, dgst string) *berthv1.Task {
		return &berthv1.Task{Spec: &berthv1.ServiceSpec{Image: image, ImageDigest: dgst}}
	}
	auth := func(image string) *berthv1.ImageSource {
		if image == "registry.local/web:1" {
			return &berthv1.ImageSource{Username: "ci", Secret: "s3cret", Insecure: true}
		}
		return nil
	}
	grant := func(node, dgst string) ([]byte, error) { return []byte(node + "@" + dgst), nil }
	tests := []struct {
		name   string
		self   string
		tasks  []*berthv1.Task
		auth   func(string) *berthv1.ImageSource
		grant  GrantFunc
		want   []*berthv1.ImageSource
		grants []string
	}{
		{
			name: "a tag alone has no peers, whatever nodes hold under it",
			self: "n2", tasks: []*berthv1.Task{task("busybox", ""), task("busybox:latest", "")}, grant: grant,
			want: []*berthv1.ImageSource{{Image: "busybox"}, {Image: "busybox:latest"}},
		},
		{
			name: "a pinned digest matches by digest whatever the name, with a grant for the node",
			self: "n9", tasks: []*berthv1.Task{task("registry.local/web:3", digest)}, grant: grant,
			want:   []*berthv1.ImageSource{{Image: "registry.local/web:3", Peers: []string{"10.0.0.5:1"}}},
			grants: []string{"n9@" + digest},
		},
		{
			name: "ready nodes with an address only, at most three, self left out",
			self: "n2", tasks: []*berthv1.Task{task("busybox", "sha256:bb")}, grant: grant,
			want:   []*berthv1.ImageSource{{Image: "busybox", Peers: []string{"10.0.0.1:1", "10.0.0.5:1", "10.0.0.6:1"}}},
			grants: []string{"n2@sha256:bb"},
		},
		{
			name: "without a grant signer no peers",
			self: "n9", tasks: []*berthv1.Task{task("registry.local/web:3", digest)},
			want: []*berthv1.ImageSource{{Image: "registry.local/web:3"}},
		},
		{
			name: "a pinned digest no node holds has no peers, even where the name is",
			self: "n9", tasks: []*berthv1.Task{task("registry.local/web:1", "sha256:new")}, auth: auth, grant: grant,
			want: []*berthv1.ImageSource{{Image: "registry.local/web:1", Username: "ci", Secret: "s3cret", Insecure: true}},
		},
		{
			name: "one source per image, credential merged",
			self: "n1", tasks: []*berthv1.Task{task("registry.local/web:1", ""), task("registry.local/web:1", ""), task("nowhere:1", "")}, auth: auth,
			want: []*berthv1.ImageSource{
				{Image: "nowhere:1"},
				{Image: "registry.local/web:1", Username: "ci", Secret: "s3cret", Insecure: true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := imageSources(idx, tt.self, tt.tasks, tt.auth, tt.grant)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d sources %v, want %v", len(got), got, tt.want)
			}
			var grants []string
			for i := range got {
				g, w := got[i], tt.want[i]
				if g.Image != w.Image || !slices.Equal(g.Peers, w.Peers) || g.Username != w.Username || g.Secret != w.Secret || g.Insecure != w.Insecure {
					t.Errorf("source %d: got %v, want %v", i, g, w)
				}
				for _, pg := range g.PullGrants {
					grants = append(grants, string(pg))
				}
			}
			if !slices.Equal(grants, tt.grants) {
				t.Errorf("grants %q, want %q", grants, tt.grants)
			}
		})
	}
}

func TestImageDigests(t *testing.T) {
	stored := map[string]string{"a": "sha256:a", "b": "sha256:b"}
	tests := []struct {
		name string
		imgs nodeImages
		want map[string]string
	}{
		{"sent digests replace the stored", nodeImages{names: []string{"c"}, digests: map[string]string{"c": "sha256:c"}}, map[string]string{"c": "sha256:c"}},
		{"without digests, gone images drop theirs", nodeImages{names: []string{"b", "c"}}, map[string]string{"b": "sha256:b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := imageDigests(tt.imgs, stored)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestRegisterStoresContentAddressAndDigests(t *testing.T) {
	s, c := newStoreAndCache(t)
	pool, err := NewSubnetPool("10.41.0.0/16", 24)
	if err != nil {
		t.Fatal(err)
	}
	d := New(Config{Store: s, Cache: c, Subnets: pool, Log: slog.New(slog.DiscardHandler)})
	n, _, err := d.register(context.Background(), "n1", joined(t, s, c, "n1", "alpha", nil), &berthv1.NodeDescription{
		Name: "alpha", ContentAddress: "127.0.0.1:5001",
		Images: []string{"docker.io/library/busybox:latest"}, ImageDigests: map[string]string{"docker.io/library/busybox:latest": "sha256:b"},
	})
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := c.Node("n1")
	for _, got := range []*berthv1.Node{n, stored} {
		if got.ContentAddress != "127.0.0.1:5001" || got.ImageDigests["docker.io/library/busybox:latest"] != "sha256:b" {
			t.Errorf("node has content address %q and digests %v, want what the agent described", got.ContentAddress, got.ImageDigests)
		}
	}
}

func TestPeersChanged(t *testing.T) {
	base := &berthv1.Node{Status: berthv1.NodeStatus_NODE_STATUS_READY, ContentAddress: "a:1", Images: []string{"x"}, ImageDigests: map[string]string{"x": "d"}}
	with := func(f func(n *berthv1.Node)) *berthv1.Node {
		n := proto.Clone(base).(*berthv1.Node)
		f(n)
		return n
	}
	tests := []struct {
		name string
		next *berthv1.Node
		want bool
	}{
		{"heartbeat only", with(func(n *berthv1.Node) { n.LastHeartbeat = timestamppb.Now() }), false},
		{"status", with(func(n *berthv1.Node) { n.Status = berthv1.NodeStatus_NODE_STATUS_DOWN }), true},
		{"content address", with(func(n *berthv1.Node) { n.ContentAddress = "a:2" }), true},
		{"names alone (peers are found by digest)", with(func(n *berthv1.Node) { n.Images = append(n.Images, "y") }), false},
		{"digests", with(func(n *berthv1.Node) { n.ImageDigests["x"] = "e" }), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := store.Event{Kind: store.KindNode, Action: store.ActionPut, Object: tt.next, Old: base}
			if got := peersChanged(ev); got != tt.want {
				t.Errorf("peersChanged = %v, want %v", got, tt.want)
			}
		})
	}
}
