package registry

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/registry/registrytest"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
)

// run starts c and waits for its first read; it stops with the test.
func run(t *testing.T, c *Credentials) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-c.Synced():
	case <-time.After(20 * time.Second):
		t.Fatal("credentials not read")
	}
}

func newCredentials(t *testing.T, s *store.Store, insecure ...string) *Credentials {
	t.Helper()
	c := New(Config{
		Store: s, Key: key(7), Log: slog.New(slog.DiscardHandler),
		Settings: func() *berthv1.ClusterSettings { return &berthv1.ClusterSettings{InsecureRegistries: insecure} },
	})
	run(t, c)
	return c
}

func TestCredentialsPutListLookupDelete(t *testing.T) {
	ctx := context.Background()
	s := storetest.New(t)
	c := newCredentials(t, s, "127.0.0.1:5000")
	// A second server's view, fed by the watch alone.
	other := newCredentials(t, s, "127.0.0.1:5000")

	if err := c.Put(ctx, "127.0.0.1:5000", "ann", "pw1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, "docker.io", "bob", "pw2"); err != nil {
		t.Fatal(err)
	}
	list := c.List()
	if len(list) != 2 || list[0].Registry != "127.0.0.1:5000" || list[1].Registry != "docker.io" {
		t.Fatalf("List = %v", list)
	}
	for _, cr := range list {
		if len(cr.SealedSecret) != 0 {
			t.Errorf("List shows the sealed secret of %s", cr.Registry)
		}
	}
	raw := &berthv1.RegistryCredential{}
	if err := s.Get(ctx, store.RegistryKey("docker.io"), raw); err != nil {
		t.Fatal(err)
	}
	if raw.Username != "bob" || len(raw.SealedSecret) == 0 || string(raw.SealedSecret) == "pw2" {
		t.Errorf("stored credential = %v", raw)
	}

	// The other server sees the logins through its watch.
	deadline := time.Now().Add(10 * time.Second)
	for len(other.List()) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the other server sees %v", other.List())
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	user, secret, ok, err := other.Lookup("127.0.0.1:5000")
	if err != nil || !ok || user != "ann" || secret != "pw1" {
		t.Errorf("Lookup = %q %q %v %v", user, secret, ok, err)
	}

	// A second login replaces the first.
	if err := c.Put(ctx, "docker.io", "bob", "pw3"); err != nil {
		t.Fatal(err)
	}
	if _, secret, _, _ := c.Lookup("docker.io"); secret != "pw3" {
		t.Errorf("after a second login the secret is %q", secret)
	}

	found, err := c.Delete(ctx, "docker.io")
	if err != nil || !found {
		t.Fatalf("Delete = %v, %v", found, err)
	}
	if _, _, ok, _ := c.Lookup("docker.io"); ok {
		t.Errorf("the credential is still there after Delete")
	}
	if found, err := c.Delete(ctx, "docker.io"); err != nil || found {
		t.Errorf("second Delete = %v, %v", found, err)
	}
}

func TestImageAuth(t *testing.T) {
	ctx := context.Background()
	s := storetest.New(t)
	c := newCredentials(t, s, "127.0.0.1:5000", "plain.example.com")
	if err := c.Put(ctx, "127.0.0.1:5000", "ann", "pw1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, "docker.io", "bob", "pw2"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		image string
		want  *berthv1.ImageSource
	}{
		{"127.0.0.1:5000/app:1", &berthv1.ImageSource{Image: "127.0.0.1:5000/app:1", Username: "ann", Secret: "pw1", Insecure: true}},
		{"busybox", &berthv1.ImageSource{Image: "busybox", Username: "bob", Secret: "pw2"}},
		{"docker.io/library/busybox:1", &berthv1.ImageSource{Image: "docker.io/library/busybox:1", Username: "bob", Secret: "pw2"}},
		{"plain.example.com/app", &berthv1.ImageSource{Image: "plain.example.com/app", Insecure: true}},
		{"quay.example.com/app:1", nil},
		{"NOT A REF", nil},
	}
	for _, tc := range cases {
		got := c.ImageAuth(tc.image)
		if (got == nil) != (tc.want == nil) || got != nil && (got.Image != tc.want.Image || got.Username != tc.want.Username || got.Secret != tc.want.Secret || got.Insecure != tc.want.Insecure) {
			t.Errorf("ImageAuth(%q) = %v, want %v", tc.image, got, tc.want)
		}
	}

	// A credential sealed under another cluster's key is not sent.
	wrong := New(Config{Store: s, Key: key(8), Log: slog.New(slog.DiscardHandler)})
	run(t, wrong)
	if got := wrong.ImageAuth("busybox"); got != nil {
		t.Errorf("ImageAuth under the wrong key = %v", got)
	}
	if _, _, _, err := wrong.Lookup("docker.io"); !errors.Is(err, ErrUnseal) {
		t.Errorf("Lookup under the wrong key: %v", err)
	}
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name     string
		auth     registrytest.Auth
		password string
		want     error
	}{
		{"no auth", registrytest.NoAuth, "anything", nil},
		{"basic, right password", registrytest.Basic, "pw", nil},
		{"basic, wrong password", registrytest.Basic, "nope", ErrUnauthorized},
		{"bearer, right password", registrytest.Bearer, "pw", nil},
		{"bearer, wrong password", registrytest.Bearer, "nope", ErrUnauthorized},
	}
	for _, tc := range cases {
		reg := registrytest.New(t, tc.auth, "ann", "pw")
		err := Check(ctx, reg.Host, "ann", tc.password, true)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: Check = %v, want %v", tc.name, err, tc.want)
		}
	}
	// Nothing listens on port 1 of loopback.
	if err := Check(ctx, "127.0.0.1:1", "ann", "pw", true); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Check of a closed port = %v, want ErrUnreachable", err)
	}
}

func TestResolve(t *testing.T) {
	ctx := context.Background()
	s := storetest.New(t)
	reg := registrytest.New(t, registrytest.Basic, "ann", "pw")
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	reg.SetManifest("team/app", "1", digest)
	c := newCredentials(t, s, reg.Host)

	if _, err := c.Resolve(ctx, reg.Host+"/team/app:1"); err == nil {
		t.Errorf("Resolve without a credential succeeded")
	}
	if err := c.Put(ctx, reg.Host, "ann", "pw"); err != nil {
		t.Fatal(err)
	}
	got, err := c.Resolve(ctx, reg.Host+"/team/app:1")
	if err != nil || got != digest {
		t.Errorf("Resolve = %q, %v; want %s", got, err, digest)
	}
	if _, err := c.Resolve(ctx, reg.Host+"/team/app:2"); err == nil {
		t.Errorf("Resolve of a missing tag succeeded")
	}
	pinned := "busybox@" + digest
	if got, err := c.Resolve(ctx, pinned); err != nil || got != digest {
		t.Errorf("Resolve(%s) = %q, %v", pinned, got, err)
	}
}
