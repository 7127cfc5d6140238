package apiserver

import (
	"context"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/imageref"
	"github.com/berthproject/berth/controlplane/registry/registrytest"
	"github.com/berthproject/berth/controlplane/store"
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// putNode stores a ready node holding images at the digests given.
func putNode(t *testing.T, s *Server, id string, digests map[string]string) {
	t.Helper()
	n := &berthv1.Node{Meta: &berthv1.Meta{Id: id}, Name: id, Status: berthv1.NodeStatus_NODE_STATUS_READY, ImageDigests: digests, ContentAddress: id + ":7000"}
	for img := range digests {
		n.Images = append(n.Images, img)
	}
	var txn store.Txn
	txn.Put(store.NodeKey(id), n)
	rev, err := s.cfg.Store.Commit(context.Background(), &txn)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cfg.Cache.WaitRevision(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
}

func storedDigest(t *testing.T, s *Server, app, name string) string {
	t.Helper()
	svc, ok := s.cfg.Cache.Service(store.ServiceKey(DefaultNamespace, app, name))
	if !ok {
		t.Fatalf("service %s/%s not stored", app, name)
	}
	return svc.Spec.ImageDigest
}

func applyOne(t *testing.T, s *Server, app string, services ...*berthv1.Service) map[string]*berthv1.ServiceChange {
	t.Helper()
	resp, err := s.Apply(context.Background(), &berthv1.ApplyRequest{App: app, Services: services})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	out := map[string]*berthv1.ServiceChange{}
	for _, c := range resp.Changes {
		out[c.Service] = c
	}
	return out
}

func TestApplyPinsDigests(t *testing.T) {
	reg := registrytest.New(t, registrytest.NoAuth, "", "")
	reg.SetManifest("app", "1", digestA)
	s := newRegistryServer(t, reg.Host)
	// web:1 was built by the cluster; split:1 only sits on nodes, which
	// all report one digest for it, and a node reports another for web:1.
	putImageRecord(t, s, "localhost/web:1", digestA)
	putNode(t, s, "n1", map[string]string{"localhost/web:1": digestB, "localhost/split:1": digestA})
	putNode(t, s, "n2", map[string]string{"localhost/split:1": digestA})

	regImage := reg.Host + "/app:1"
	changes := applyOne(t, s, "shop",
		svc("web", "localhost/web:1", 1),
		svc("api", regImage, 1),
		svc("split", "localhost/split:1", 1),
		svc("pinned", "localhost/web@"+digestB, 1),
		svc("lost", reg.Host+"/missing:1", 1),
	)
	for name, c := range changes {
		if c.Action != berthv1.ChangeAction_CHANGE_ACTION_CREATE {
			t.Errorf("%s: %v", name, c.Action)
		}
	}
	want := map[string]string{"web": digestA, "api": digestA, "split": "", "pinned": digestB, "lost": ""}
	for name, d := range want {
		if got := storedDigest(t, s, "shop", name); got != d {
			t.Errorf("%s: image_digest %q, want %q", name, got, d)
		}
	}

	// The same file again is unchanged, without asking the registry.
	heads := reg.Heads()
	reg.SetManifest("app", "1", digestB) // the tag moved meanwhile
	changes = applyOne(t, s, "shop",
		svc("web", "localhost/web:1", 1),
		svc("api", regImage, 1),
		svc("split", "localhost/split:1", 1),
		svc("pinned", "localhost/web@"+digestB, 1),
		svc("lost", reg.Host+"/missing:1", 1),
	)
	for _, name := range []string{"web", "api", "pinned", "split", "lost"} {
		if c := changes[name]; c.Action != berthv1.ChangeAction_CHANGE_ACTION_UNCHANGED {
			t.Errorf("re-apply: %s %v %v, want unchanged", name, c.Action, c.Fields)
		}
	}
	if got := storedDigest(t, s, "shop", "api"); got != digestA {
		t.Errorf("re-apply moved api to %s", got)
	}
	// Nothing is asked again, not even for the tags left unpinned.
	if got := reg.Heads() - heads; got != 0 {
		t.Errorf("re-apply asked the registry %d times", got)
	}

	// A new image is resolved: the moved tag's new digest.
	changes = applyOne(t, s, "shop", svc("api", reg.Host+"/app:1", 2), svc("web", "localhost/web:1", 1))
	if c := changes["api"]; c.Action != berthv1.ChangeAction_CHANGE_ACTION_UPDATE {
		t.Errorf("replicas change: %v", c)
	}
	if got := storedDigest(t, s, "shop", "api"); got != digestA {
		t.Errorf("a replicas change re-pinned api to %s", got)
	}
	reg.SetManifest("app", "2", digestB)
	changes = applyOne(t, s, "shop", svc("api", reg.Host+"/app:2", 2), svc("web", "localhost/web:1", 1))
	if c := changes["api"]; c.Action != berthv1.ChangeAction_CHANGE_ACTION_UPDATE || len(c.Fields) != 2 || c.Fields[0] != "image" || c.Fields[1] != "image_digest" {
		t.Errorf("image change: %v", c)
	}
	if got := storedDigest(t, s, "shop", "api"); got != digestB {
		t.Errorf("api pinned to %s after an image change, want %s", got, digestB)
	}
}

// putImageRecord stores the record of an image the cluster built.
func putImageRecord(t *testing.T, s *Server, image, digest string) {
	t.Helper()
	full, err := imageref.Normalize(image)
	if err != nil {
		t.Fatal(err)
	}
	rec := &berthv1.ImageRecord{Image: full, Digest: digest, Origin: berthv1.ImageOrigin_IMAGE_ORIGIN_BUILD, NodeId: "n1"}
	if err := s.cfg.Store.PutImageRecords(context.Background(), []*berthv1.ImageRecord{rec}); err != nil {
		t.Fatal(err)
	}
}

// TestApplyNeverPinsNodeDigests: what a node says it holds under a tag is
// not what the cluster runs under that tag; only the cluster's own record
// (or a registry) is.
func TestApplyNeverPinsNodeDigests(t *testing.T) {
	s := newServer(t)
	putNode(t, s, "n1", map[string]string{"docker.io/library/busybox:1": digestA, "docker.io/library/busybox:2": digestA})
	putNode(t, s, "n2", map[string]string{"docker.io/library/busybox:1": digestA})
	putImageRecord(t, s, "busybox:2", digestB)
	req := &berthv1.ApplyRequest{App: "shop", Services: []*berthv1.Service{svc("a", "busybox:1", 1), svc("b", "busybox:2", 1)}}
	warnings := s.pinDigests(context.Background(), req)
	if got := req.Services[0].Spec.ImageDigest; got != "" {
		t.Errorf("a: pinned to %q, the digest nodes reported", got)
	}
	if got := req.Services[1].Spec.ImageDigest; got != digestB {
		t.Errorf("b: pinned to %q, want the cluster's record %q", got, digestB)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "neither built nor imported") || !strings.Contains(warnings[0], "berth image import") {
		t.Errorf("warnings %q, want one that says busybox:1 is unknown and how to fix it", warnings)
	}
}

// TestImportAndBuildRecordDigests: an import pins the names its nodes agree
// on; a build pins its tags.
func TestImportAndBuildRecordDigests(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	img := func(name, d string) *berthv1.Image { return &berthv1.Image{Name: name, Digest: d} }
	s.recordImport(ctx, []*berthv1.NodeImportResult{
		{NodeId: "n1", Images: []*berthv1.Image{img("localhost/app:1", digestA), img("localhost/split:1", digestA)}},
		{NodeId: "n2", Images: []*berthv1.Image{img("localhost/app:1", digestA), img("localhost/split:1", digestB)}},
		{NodeId: "n3", Error: "disk full", Images: []*berthv1.Image{img("localhost/app:1", digestB)}},
	})
	s.recordBuild(ctx, "n1", []string{"web:dev", "web:latest"}, &berthv1.BuildResult{Image: "web:dev", Digest: digestB})
	want := map[string]string{"localhost/app:1": digestA, "localhost/split:1": "", "web:dev": digestB, "web": digestB}
	for image, d := range want {
		got, err := s.resolveDigest(ctx, image)
		if got != d || (d == "") != (err != nil) {
			t.Errorf("resolveDigest(%q) = %q, %v; want %q", image, got, err, d)
		}
	}
}
