package apiserver

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
	"github.com/berthproject/berth/controlplane/seal"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/store/storetest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
)

// testKEK is a key-encryption key for tests.
func testKEK(t testing.TB) *seal.Key {
	t.Helper()
	k, err := seal.New(bytes.Repeat([]byte{3}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newFileServer is newServer with a key-encryption key, for secrets.
func newFileServer(t *testing.T) *Server {
	t.Helper()
	s := storetest.New(t)
	return New(Config{Store: s, Cache: storetest.NewCache(t, s), KEK: testKEK(t), Log: slog.New(slog.DiscardHandler)})
}

// usesSecret makes s use secrets by name, as Compose's short syntax does.
func usesSecret(s *berthv1.Service, names ...string) *berthv1.Service {
	for _, n := range names {
		s.Spec.Secrets = append(s.Spec.Secrets, &berthv1.FileReference{Name: n, Target: n})
	}
	return s
}

func usesConfig(s *berthv1.Service, names ...string) *berthv1.Service {
	for _, n := range names {
		s.Spec.Configs = append(s.Spec.Configs, &berthv1.FileReference{Name: n, Target: "/" + n})
	}
	return s
}

// assertNoneInEtcd fails when any value in etcd (events included) holds
// one of the secrets.
func assertNoneInEtcd(t *testing.T, s *Server, secrets ...string) {
	t.Helper()
	if err := s.cfg.Store.FlushEvents(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp, err := s.cfg.Store.Client().Get(context.Background(), "\x00", clientv3.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		for _, sec := range secrets {
			if bytes.Contains(kv.Value, []byte(sec)) {
				t.Errorf("secret %q is readable in etcd at %s", sec, kv.Key)
			}
		}
	}
}

func storedService(t *testing.T, s *Server, ns, app, name string) *berthv1.Service {
	t.Helper()
	svc, ok := s.cfg.Cache.Service(store.ServiceKey(ns, app, name))
	if !ok {
		t.Fatalf("service %s/%s not stored", app, name)
	}
	return svc
}

func TestSecretAPI(t *testing.T) {
	ctx := context.Background()
	s := newFileServer(t)
	const data = "s3cret-password"
	sec, err := s.CreateSecret(ctx, &berthv1.CreateSecretRequest{Name: "db_password", Data: []byte(data), Labels: map[string]string{"team": "core"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sec.SealedData) != 0 || sec.Version != 1 || !strings.HasPrefix(sec.Digest, seal.DigestPrefix) || sec.Size != int64(len(data)) || sec.Namespace != DefaultNamespace {
		t.Fatalf("CreateSecret answered %v", sec)
	}
	stored, ok := s.cfg.Cache.Secret(DefaultNamespace, "db_password")
	if !ok || len(stored.SealedData) == 0 {
		t.Fatalf("stored secret %v has no sealed data", stored)
	}
	if plain, err := testKEK(t).Open(seal.KindSecret, "default/db_password", stored.SealedData); err != nil || string(plain) != data {
		t.Fatalf("the sealed data opens to %q, %v", plain, err)
	}

	got, err := s.GetSecret(ctx, &berthv1.GetSecretRequest{Name: "db_password"})
	if err != nil || len(got.Secret.SealedData) != 0 || got.Secret.Digest != sec.Digest {
		t.Fatalf("GetSecret = %v, %v", got, err)
	}
	list, err := s.ListSecrets(ctx, &berthv1.ListSecretsRequest{})
	if err != nil || len(list.Secrets) != 1 || len(list.Secrets[0].Secret.SealedData) != 0 {
		t.Fatalf("ListSecrets = %v, %v", list, err)
	}

	_, err = s.CreateSecret(ctx, &berthv1.CreateSecretRequest{Name: "db_password", Data: []byte("other")})
	wantStatus(t, "create again", err, codes.AlreadyExists, "--update")
	same, err := s.CreateSecret(ctx, &berthv1.CreateSecretRequest{Name: "db_password", Data: []byte(data), Labels: map[string]string{"team": "core"}, Update: true})
	if err != nil || same.Version != 1 {
		t.Fatalf("update with the same data = %v, %v; want version 1", same, err)
	}
	next, err := s.CreateSecret(ctx, &berthv1.CreateSecretRequest{Name: "db_password", Data: []byte("n3w-password-2"), Update: true})
	if err != nil || next.Version != 2 || next.Digest == sec.Digest || len(next.SealedData) != 0 {
		t.Fatalf("update with new data = %v, %v; want version 2", next, err)
	}
	created, err := s.CreateSecret(ctx, &berthv1.CreateSecretRequest{Namespace: "team-a", Name: "api.key", Data: []byte("k"), Update: true})
	if err != nil || created.Version != 1 || created.Namespace != "team-a" {
		t.Fatalf("update of a missing secret = %v, %v; want it made", created, err)
	}

	for _, tc := range []struct {
		name string
		req  *berthv1.CreateSecretRequest
		want string
	}{
		{"bad name", &berthv1.CreateSecretRequest{Name: "a/b", Data: []byte("x")}, "invalid secret name"},
		{"empty name", &berthv1.CreateSecretRequest{Data: []byte("x")}, "name is empty"},
		{"too large", &berthv1.CreateSecretRequest{Name: "big", Data: make([]byte, validation.MaxFileSize+1)}, "500 KiB"},
		{"empty label key", &berthv1.CreateSecretRequest{Name: "x", Data: []byte("x"), Labels: map[string]string{" ": "v"}}, "empty key"},
	} {
		_, err := s.CreateSecret(ctx, tc.req)
		wantStatus(t, tc.name, err, codes.InvalidArgument, tc.want)
	}

	_, err = s.GetSecret(ctx, &berthv1.GetSecretRequest{Name: "nope"})
	wantStatus(t, "get missing", err, codes.NotFound, "berth secret ls")
	_, err = s.RemoveSecret(ctx, &berthv1.RemoveSecretRequest{Name: "nope"})
	wantStatus(t, "remove missing", err, codes.NotFound)
	if _, err := s.RemoveSecret(ctx, &berthv1.RemoveSecretRequest{Name: "db_password"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.cfg.Cache.Secret(DefaultNamespace, "db_password"); ok {
		t.Fatal("the removed secret is still stored")
	}
	assertNoneInEtcd(t, s, data, "n3w-password-2")
}

func TestSecretsNeedAKey(t *testing.T) {
	s := newServer(t)
	_, err := s.CreateSecret(context.Background(), &berthv1.CreateSecretRequest{Name: "x", Data: []byte("x")})
	wantStatus(t, "no key", err, codes.FailedPrecondition, "key-encryption key")
}

func TestSecretUpdateRollsItsServices(t *testing.T) {
	ctx := context.Background()
	s := newFileServer(t)
	if _, err := s.CreateSecret(ctx, &berthv1.CreateSecretRequest{Name: "token", Data: []byte("token-value-one")}); err != nil {
		t.Fatal(err)
	}
	for _, app := range []string{"shop", "blog"} {
		_, err := s.Apply(ctx, &berthv1.ApplyRequest{App: app, Services: []*berthv1.Service{
			usesSecret(svc("web", "busybox", 1), "token"), svc("db", "busybox", 1),
		}, Secrets: []*berthv1.AppFile{{Name: "token", External: true, Key: "token"}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	web := storedService(t, s, DefaultNamespace, "shop", "web")
	ref := web.GetSpec().GetSecrets()[0]
	sec, _ := s.cfg.Cache.Secret(DefaultNamespace, "token")
	if ref.Version != 1 || ref.Digest != sec.Digest {
		t.Fatalf("the applied reference is %v, want version 1 and the secret's digest", ref)
	}

	_, err := s.RemoveSecret(ctx, &berthv1.RemoveSecretRequest{Name: "token"})
	wantStatus(t, "remove a used secret", err, codes.FailedPrecondition, "services blog/web and shop/web")
	got, err := s.GetSecret(ctx, &berthv1.GetSecretRequest{Name: "token"})
	if err != nil || !slices.Equal(got.Services, []string{"blog/web", "shop/web"}) {
		t.Fatalf("GetSecret services = %v, %v", got.GetServices(), err)
	}

	next, err := s.CreateSecret(ctx, &berthv1.CreateSecretRequest{Name: "token", Data: []byte("token-value-two"), Update: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, app := range []string{"shop", "blog"} {
		web := storedService(t, s, DefaultNamespace, app, "web")
		ref := web.GetSpec().GetSecrets()[0]
		if web.SpecVersion != 2 || ref.Version != 2 || ref.Digest != next.Digest {
			t.Errorf("%s/web: spec version %d, reference %v; want a new spec version on secret version 2", app, web.SpecVersion, ref)
		}
		if web.ChangeCause != "secret token changed to version 2" || web.GetUpdateStatus().GetState() != berthv1.UpdateState_UPDATE_STATE_UPDATING {
			t.Errorf("%s/web: cause %q, update %v", app, web.ChangeCause, web.GetUpdateStatus())
		}
		if len(web.Revisions) != 1 || web.Revisions[0].GetSpec().GetSecrets()[0].GetVersion() != 1 {
			t.Errorf("%s/web: revisions %v; want the spec of version 1 kept", app, web.Revisions)
		}
		if db := storedService(t, s, DefaultNamespace, app, "db"); db.SpecVersion != 1 {
			t.Errorf("%s/db, which uses no secret, has spec version %d", app, db.SpecVersion)
		}
	}
	// A rollback to the spec of version 1 keeps the stored secret: the
	// data of its version 1 is gone.
	back, err := s.RollbackService(ctx, &berthv1.RollbackServiceRequest{App: "blog", Service: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if r := back.Spec.Secrets[0]; back.SpecVersion != 3 || r.Version != 2 || r.Digest != next.Digest {
		t.Errorf("blog/web rolled back to spec version %d with reference %v; want the stored version 2", back.SpecVersion, r)
	}
	// The same data again is no new version and rolls nothing.
	if _, err := s.CreateSecret(ctx, &berthv1.CreateSecretRequest{Name: "token", Data: []byte("token-value-two"), Update: true}); err != nil {
		t.Fatal(err)
	}
	if web := storedService(t, s, DefaultNamespace, "shop", "web"); web.SpecVersion != 2 {
		t.Errorf("an update with the same data made spec version %d", web.SpecVersion)
	}
	// Re-applying the app keeps the new version: it is what is stored.
	resp, err := s.Apply(ctx, &berthv1.ApplyRequest{App: "shop", Services: []*berthv1.Service{
		usesSecret(svc("web", "busybox", 1), "token"), svc("db", "busybox", 1),
	}, Secrets: []*berthv1.AppFile{{Name: "token", External: true}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range resp.Changes {
		if c.Action != berthv1.ChangeAction_CHANGE_ACTION_UNCHANGED {
			t.Errorf("re-apply after the update: %s %v %v", c.Service, c.Action, c.Fields)
		}
	}
	assertNoneInEtcd(t, s, "token-value-one", "token-value-two")
}
