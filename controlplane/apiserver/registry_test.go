package apiserver

import (
	"context"
	"log/slog"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/registry"
	"github.com/berthproject/berth/controlplane/registry/registrytest"
	"github.com/berthproject/berth/controlplane/store/storetest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// newRegistryServer returns an API server that keeps registry
// credentials; insecure are the registries reached over plain HTTP.
func newRegistryServer(t *testing.T, insecure ...string) *Server {
	t.Helper()
	st := storetest.New(t)
	cache := storetest.NewCache(t, st)
	creds := registry.New(registry.Config{Store: st, Key: testKEK(t), Settings: cache.Settings, Log: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- creds.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-creds.Synced():
	case <-time.After(20 * time.Second):
		t.Fatal("credentials not read")
	}
	s := New(Config{Store: st, Cache: cache, Registries: creds, Log: slog.New(slog.DiscardHandler)})
	if len(insecure) > 0 {
		if _, err := s.UpdateSettings(ctx, &berthv1.UpdateSettingsRequest{Settings: &berthv1.ClusterSettings{InsecureRegistries: insecure}}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestLoginLogoutList(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.New(t, registrytest.Basic, "ann", "pw")
	s := newRegistryServer(t, reg.Host)

	bad := []struct {
		name string
		req  *berthv1.LoginRequest
		code codes.Code
	}{
		{"empty user", &berthv1.LoginRequest{Registry: reg.Host, Password: "pw"}, codes.InvalidArgument},
		{"empty password", &berthv1.LoginRequest{Registry: reg.Host, Username: "ann"}, codes.InvalidArgument},
		{"bad host", &berthv1.LoginRequest{Registry: "not a host", Username: "ann", Password: "pw"}, codes.InvalidArgument},
		{"bad port", &berthv1.LoginRequest{Registry: "example.com:99999", Username: "ann", Password: "pw"}, codes.InvalidArgument},
		{"wrong password", &berthv1.LoginRequest{Registry: reg.Host, Username: "ann", Password: "nope"}, codes.Unauthenticated},
	}
	for _, tc := range bad {
		if _, err := s.Login(ctx, tc.req); status.Code(err) != tc.code {
			t.Errorf("%s: Login = %v, want %s", tc.name, err, tc.code)
		}
	}
	if list, _ := s.ListRegistries(ctx, &berthv1.ListRegistriesRequest{}); len(list.Registries) != 0 {
		t.Fatalf("failed logins stored %v", list.Registries)
	}

	if _, err := s.Login(ctx, &berthv1.LoginRequest{Registry: "http://" + reg.Host + "/", Username: "ann", Password: "pw"}); err != nil {
		t.Fatalf("Login: %v", err)
	}
	// Unreachable from the server: stored all the same.
	if _, err := s.Login(ctx, &berthv1.LoginRequest{Registry: "127.0.0.1:1", Username: "bob", Password: "pw"}); err != nil {
		t.Fatalf("Login to an unreachable registry: %v", err)
	}
	list, err := s.ListRegistries(ctx, &berthv1.ListRegistriesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Registries) != 2 || list.Registries[0].Registry != "127.0.0.1:1" || list.Registries[1].Registry != reg.Host || list.Registries[1].Username != "ann" {
		t.Fatalf("ListRegistries = %v", list.Registries)
	}
	for _, r := range list.Registries {
		if len(r.SealedSecret) != 0 {
			t.Errorf("ListRegistries shows the secret of %s", r.Registry)
		}
	}
	src := s.cfg.Registries.ImageAuth(reg.Host + "/app:1")
	if src == nil || src.Username != "ann" || src.Secret != "pw" || !src.Insecure {
		t.Errorf("ImageAuth = %v", src)
	}

	if _, err := s.Logout(ctx, &berthv1.LogoutRequest{Registry: reg.Host}); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if _, err := s.Logout(ctx, &berthv1.LogoutRequest{Registry: reg.Host}); status.Code(err) != codes.NotFound {
		t.Errorf("second Logout = %v, want NotFound", err)
	}
	if _, err := s.Logout(ctx, &berthv1.LogoutRequest{Registry: "bad host"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Logout of a bad host = %v, want InvalidArgument", err)
	}
	if list, _ := s.ListRegistries(ctx, &berthv1.ListRegistriesRequest{}); len(list.Registries) != 1 {
		t.Errorf("after logout: %v", list.Registries)
	}
}

func TestLoginWithoutRegistries(t *testing.T) {
	s := newServer(t)
	if _, err := s.Login(context.Background(), &berthv1.LoginRequest{Registry: "r", Username: "u", Password: "p"}); status.Code(err) != codes.Unimplemented {
		t.Errorf("Login = %v, want Unimplemented", err)
	}
}

func TestInsecureRegistriesSetting(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	got, err := s.UpdateSettings(ctx, &berthv1.UpdateSettingsRequest{Settings: &berthv1.ClusterSettings{InsecureRegistries: []string{"B.example.com:5000", "a.example.com", "", "a.example.com"}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a.example.com", "b.example.com:5000"}; len(got.InsecureRegistries) != 2 || got.InsecureRegistries[0] != want[0] || got.InsecureRegistries[1] != want[1] {
		t.Errorf("insecure registries = %v, want %v", got.InsecureRegistries, want)
	}
	if _, err := s.UpdateSettings(ctx, &berthv1.UpdateSettingsRequest{Settings: &berthv1.ClusterSettings{InsecureRegistries: []string{"bad host"}}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a bad registry = %v, want InvalidArgument", err)
	}
	got, err = s.UpdateSettings(ctx, &berthv1.UpdateSettingsRequest{Settings: &berthv1.ClusterSettings{}})
	if err != nil || len(got.InsecureRegistries) != 0 {
		t.Errorf("clearing: %v, %v", got, err)
	}
}
