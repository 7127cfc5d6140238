package apiserver

import (
	"context"
	"slices"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// shopRequest is app shop: web uses its secret shop_db and config
// shop_conf.
func shopRequest(secret, config string) *berthv1.ApplyRequest {
	req := &berthv1.ApplyRequest{App: "shop", Services: []*berthv1.Service{
		usesConfig(usesSecret(svc("web", "busybox", 1), "shop_db"), "shop_conf"),
	}, Secrets: []*berthv1.AppFile{{Name: "shop_db", Key: "db", Data: []byte(secret)}}}
	if config != "" {
		req.Configs = []*berthv1.AppFile{{Name: "shop_conf", Key: "conf", Data: []byte(config)}}
	}
	return req
}

func fieldViolations(err error) []string {
	var fields []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.FieldViolations {
				fields = append(fields, v.Field)
			}
		}
	}
	slices.Sort(fields)
	return fields
}

func TestApplySecretsAndConfigs(t *testing.T) {
	ctx := context.Background()
	s := newFileServer(t)
	if _, err := s.Apply(ctx, shopRequest("pw-number-one", "level=1")); err != nil {
		t.Fatal(err)
	}
	sec, ok := s.cfg.Cache.Secret(DefaultNamespace, "shop_db")
	if !ok || sec.App != "shop" || sec.Version != 1 {
		t.Fatalf("the app's secret is stored as %v", sec)
	}
	cf, ok := s.cfg.Cache.Config(DefaultNamespace, "shop_conf")
	if !ok || cf.App != "shop" || string(cf.Data) != "level=1" || cf.Digest != configDigest([]byte("level=1")) {
		t.Fatalf("the app's config is stored as %v", cf)
	}
	web := storedService(t, s, DefaultNamespace, "shop", "web")
	if r := web.Spec.Secrets[0]; r.Version != 1 || r.Digest != sec.Digest {
		t.Errorf("web's secret reference %v", r)
	}
	if r := web.Spec.Configs[0]; r.Version != 1 || r.Digest != cf.Digest {
		t.Errorf("web's config reference %v", r)
	}

	// The app's own go with its file.
	_, err := s.CreateSecret(ctx, &berthv1.CreateSecretRequest{Name: "shop_db", Data: []byte("x"), Update: true})
	wantStatus(t, "update an app's secret by hand", err, codes.FailedPrecondition, `belongs to app "shop"`)
	_, err = s.RemoveSecret(ctx, &berthv1.RemoveSecretRequest{Name: "shop_db"})
	wantStatus(t, "remove an app's secret by hand", err, codes.FailedPrecondition, `belongs to app "shop"`, "berth delete shop")

	// Another app uses shop's secret.
	if _, err := s.Apply(ctx, &berthv1.ApplyRequest{App: "blog", Services: []*berthv1.Service{usesSecret(svc("web", "busybox", 1), "shop_db")},
		Secrets: []*berthv1.AppFile{{Name: "shop_db", External: true}}}); err != nil {
		t.Fatal(err)
	}

	before := etcdRevision(t, s)
	if _, err := s.Apply(ctx, shopRequest("pw-number-one", "level=1")); err != nil {
		t.Fatal(err)
	}
	if etcdRevision(t, s) != before {
		t.Error("the same apply again wrote to the store")
	}

	resp, err := s.Apply(ctx, withDryRun(shopRequest("pw-number-two", "level=1")))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Changes) != 1 || resp.Changes[0].Action != berthv1.ChangeAction_CHANGE_ACTION_UPDATE || !slices.Equal(resp.Changes[0].Fields, []string{"secrets"}) {
		t.Errorf("dry run of a changed secret plans %v, want web updated in its secrets", resp.Changes)
	}
	if etcdRevision(t, s) != before {
		t.Fatal("a dry run wrote to the store")
	}

	if _, err := s.Apply(ctx, shopRequest("pw-number-two", "level=1")); err != nil {
		t.Fatal(err)
	}
	sec, _ = s.cfg.Cache.Secret(DefaultNamespace, "shop_db")
	if sec.Version != 2 {
		t.Fatalf("the changed secret has version %d, want 2", sec.Version)
	}
	for _, app := range []string{"shop", "blog"} {
		web := storedService(t, s, DefaultNamespace, app, "web")
		if r := web.Spec.Secrets[0]; web.SpecVersion != 2 || r.Version != 2 || r.Digest != sec.Digest {
			t.Errorf("%s/web after the secret changed: spec version %d, reference %v", app, web.SpecVersion, r)
		}
	}

	// The config dropped from the file goes; the secret another app uses
	// cannot.
	req := shopRequest("pw-number-two", "")
	req.Services[0].Spec.Configs = nil
	if _, err := s.Apply(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.cfg.Cache.Config(DefaultNamespace, "shop_conf"); ok {
		t.Error("the config the file dropped is still stored")
	}
	req = shopRequest("pw-number-two", "")
	req.Secrets, req.Services[0].Spec = nil, svc("web", "busybox", 1).Spec
	_, err = s.Apply(ctx, req)
	wantStatus(t, "drop a secret another app uses", err, codes.InvalidArgument, "secret shop_db is still used by service blog/web")

	_, err = s.DeleteApp(ctx, &berthv1.DeleteAppRequest{App: "shop"})
	wantStatus(t, "delete an app whose secret another app uses", err, codes.FailedPrecondition, "service blog/web")
	for _, app := range []string{"blog", "shop"} {
		if _, err := s.DeleteApp(ctx, &berthv1.DeleteAppRequest{App: app}); err != nil {
			t.Fatalf("delete %s: %v", app, err)
		}
	}
	if _, ok := s.cfg.Cache.Secret(DefaultNamespace, "shop_db"); ok {
		t.Error("the deleted app's secret is still stored")
	}
	assertNoneInEtcd(t, s, "pw-number-one", "pw-number-two")
}

func withDryRun(req *berthv1.ApplyRequest) *berthv1.ApplyRequest {
	req.DryRun = true
	return req
}

func TestApplyFileErrors(t *testing.T) {
	ctx := context.Background()
	s := newFileServer(t)
	if _, err := s.CreateSecret(ctx, &berthv1.CreateSecretRequest{Name: "made_by_hand", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	before := etcdRevision(t, s)
	_, err := s.Apply(ctx, &berthv1.ApplyRequest{App: "shop", Services: []*berthv1.Service{
		usesConfig(usesSecret(svc("web", "busybox", 1), "shop_db", "nope"), "missing_conf"),
	}, Secrets: []*berthv1.AppFile{
		{Name: "shop_db", Key: "db", Data: []byte("x")},
		{Name: "shop_db", Key: "db2", Data: []byte("y")},
		{Name: "ext", Key: "ext", External: true},
		{Name: "made_by_hand", Key: "hand", Data: []byte("z")},
		{Name: "shop_big", Key: "big", Data: make([]byte, validation.MaxFileSize+1)},
		{Name: "bad/name", Key: "bad", Data: []byte("z")},
	}})
	want := []string{"secrets.bad.name", "secrets.big", "secrets.db2", "web/configs[0].source", "web/secrets[1].source"}
	if got := fieldViolations(err); !slices.Equal(got, want) {
		t.Fatalf("field violations %v, want %v\n%v", got, want, err)
	}
	wantStatus(t, "bad files", err, codes.InvalidArgument,
		`secret "nope" is not defined`, `config "missing_conf" is not defined`, "more than the 500 KiB")
	// What only the store can tell: an external secret that does not
	// exist, and a file's secret whose name one made by hand holds.
	_, err = s.Apply(ctx, &berthv1.ApplyRequest{App: "shop", Services: []*berthv1.Service{
		usesSecret(svc("web", "busybox", 1), "ext", "made_by_hand"),
	}, Secrets: []*berthv1.AppFile{
		{Name: "ext", Key: "ext", External: true},
		{Name: "made_by_hand", Key: "hand", Data: []byte("z")},
	}})
	if got, want := fieldViolations(err), []string{"secrets.ext", "secrets.hand", "web/secrets[0]"}; !slices.Equal(got, want) {
		t.Fatalf("field violations %v, want %v\n%v", got, want, err)
	}
	wantStatus(t, "files the store refuses", err, codes.InvalidArgument,
		`secret "ext" does not exist`, "berth secret create ext",
		`secret "made_by_hand" already exists (made with berth secret create); use it with external: true`)
	if etcdRevision(t, s) != before {
		t.Fatal("a refused apply wrote to the store")
	}

	// A service may use a secret made by hand, listed as external.
	if _, err := s.Apply(ctx, &berthv1.ApplyRequest{App: "shop", Services: []*berthv1.Service{usesSecret(svc("web", "busybox", 1), "made_by_hand")},
		Secrets: []*berthv1.AppFile{{Name: "made_by_hand", Key: "hand", External: true}}}); err != nil {
		t.Fatalf("a service naming an existing secret: %v", err)
	}
}

func TestConfigAPI(t *testing.T) {
	ctx := context.Background()
	s := newFileServer(t)
	cf, err := s.CreateConfig(ctx, &berthv1.CreateConfigRequest{Name: "nginx.conf", Data: []byte("worker_processes 1;")})
	if err != nil || cf.Version != 1 || cf.Digest != configDigest([]byte("worker_processes 1;")) {
		t.Fatalf("CreateConfig = %v, %v", cf, err)
	}
	if _, err := s.Apply(ctx, &berthv1.ApplyRequest{App: "shop", Services: []*berthv1.Service{usesConfig(svc("web", "busybox", 1), "nginx.conf")},
		Configs: []*berthv1.AppFile{{Name: "nginx.conf", External: true}}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetConfig(ctx, &berthv1.GetConfigRequest{Name: "nginx.conf"})
	if err != nil || string(got.Config.Data) != "worker_processes 1;" || !slices.Equal(got.Services, []string{"shop/web"}) {
		t.Fatalf("GetConfig = %v, %v", got, err)
	}
	list, err := s.ListConfigs(ctx, &berthv1.ListConfigsRequest{Namespace: DefaultNamespace})
	if err != nil || len(list.Configs) != 1 || len(list.Configs[0].Config.Data) != 0 {
		t.Fatalf("ListConfigs = %v, %v; want one config without its data", list, err)
	}
	if _, err := s.CreateConfig(ctx, &berthv1.CreateConfigRequest{Name: "nginx.conf", Data: []byte("worker_processes 2;"), Update: true}); err != nil {
		t.Fatal(err)
	}
	if web := storedService(t, s, DefaultNamespace, "shop", "web"); web.SpecVersion != 2 || web.Spec.Configs[0].Version != 2 {
		t.Errorf("web after the config changed: spec version %d, reference %v", web.SpecVersion, web.Spec.Configs[0])
	}
	_, err = s.RemoveConfig(ctx, &berthv1.RemoveConfigRequest{Name: "nginx.conf"})
	wantStatus(t, "remove a used config", err, codes.FailedPrecondition, "service shop/web")
	if _, err := s.DeleteApp(ctx, &berthv1.DeleteAppRequest{App: "shop"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveConfig(ctx, &berthv1.RemoveConfigRequest{Name: "nginx.conf"}); err != nil {
		t.Fatal(err)
	}
}
