package image

import (
	"context"
	"errors"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/internal/imagesig"
)

func TestTrustVerify(t *testing.T) {
	const (
		image  = "127.0.0.1:5000/team/app:1"
		digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	)
	signed := map[string]bool{} // digests the fake registry holds a signature of
	var asked []imagesig.Registry
	verify := func(_ context.Context, repo, d string, keys []imagesig.Key, reg imagesig.Registry) (string, error) {
		asked = append(asked, reg)
		if repo != "127.0.0.1:5000/team/app" {
			t.Errorf("verified repository %q", repo)
		}
		if !signed[d] {
			return "", imagesig.ErrUnsigned
		}
		return keys[0].Name, nil
	}
	source := func(img string) *berthv1.ImageSource {
		return &berthv1.ImageSource{Image: img, Username: "u", Secret: "s", Insecure: true}
	}
	tr := NewTrust(imagesig.NewCache(imagesig.WithVerify(verify)), source)
	task := func(ns, dgst string) *berthv1.Task {
		return &berthv1.Task{Namespace: ns, Service: "web", Spec: &berthv1.ServiceSpec{Image: image, ImageDigest: dgst}}
	}
	policy := &berthv1.ImageTrust{Namespace: "default", Image: image, Policy: "127.0.0.1:5000/team/*",
		Keys: []*berthv1.TrustKey{{Name: "release", PublicKeyPem: "PEM", Cluster: true}}}

	for _, step := range []struct {
		name    string
		assign  *berthv1.Assignments
		sign    bool
		task    *berthv1.Task
		wantErr string
	}{
		{name: "no policy: runs", task: task("default", digest)},
		{name: "policy, unsigned: refused", assign: &berthv1.Assignments{Tasks: []*berthv1.Task{task("default", digest)}, ImageTrust: []*berthv1.ImageTrust{policy}},
			task: task("default", digest), wantErr: `service web: image 127.0.0.1:5000/team/app:1 (digest ` + digest + `) is refused by trust policy "127.0.0.1:5000/team/*": no signature`},
		{name: "another namespace has no policy", task: task("other", digest)},
		{name: "not pinned: refused", task: task("default", ""), wantErr: "digest not pinned"},
		{name: "signed: runs", sign: true, task: task("default", digest)},
		{name: "policy gone in a later assignment: runs", assign: &berthv1.Assignments{Tasks: []*berthv1.Task{task("default", digest)}},
			task: task("default", "sha256:ffff456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")},
	} {
		t.Run(step.name, func(t *testing.T) {
			if step.assign != nil {
				tr.Set(step.assign)
			}
			signed[digest] = signed[digest] || step.sign
			err := tr.Verify(context.Background(), step.task)
			if step.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), step.wantErr) {
				t.Fatalf("Verify = %v, want ErrUntrusted with %q", err, step.wantErr)
			}
		})
	}
	if len(asked) == 0 || asked[0] != (imagesig.Registry{Username: "u", Password: "s", Insecure: true}) {
		t.Fatalf("verified with registry %+v, want the image source's credential", asked)
	}
}
