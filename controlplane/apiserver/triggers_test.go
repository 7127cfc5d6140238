package apiserver

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store/storetest"
	"github.com/berthproject/berth/controlplane/trigger"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// newTriggerServer is newFileServer with trigger records, and service
// shop/web.
func newTriggerServer(t *testing.T) *Server {
	t.Helper()
	s := newFileServer(t)
	s.cfg.Triggers = trigger.NewRecords(s.cfg.Store, nil, slog.New(slog.DiscardHandler))
	storetest.RunMirror(t, s.cfg.Triggers.Triggers)
	storetest.RunMirror(t, s.cfg.Triggers.Runs)
	apply(t, s, "shop", svc("web", "localhost/web:1", 2))
	return s
}

func goodTrigger() *berthv1.CreateTriggerRequest {
	return &berthv1.CreateTriggerRequest{Name: "web", Git: "git://127.0.0.1:9418/shop", Branch: "main", Path: "/web/",
		Image: "127.0.0.1:5000/team/web", Service: "shop/web"}
}

func TestCreateTrigger(t *testing.T) {
	s := newTriggerServer(t)
	ctx := context.Background()
	resp, err := s.CreateTrigger(ctx, goodTrigger())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Secret) != 64 || resp.HookPath != "/hooks/web" || resp.Trigger.SealedSecret != nil {
		t.Fatalf("answer = %v, want a 64-hex secret, /hooks/web and no sealed secret", resp)
	}
	if tr := resp.Trigger; tr.Path != "web" || tr.App != "shop" || tr.Service != "web" || tr.Image != "127.0.0.1:5000/team/web" {
		t.Errorf("trigger = %v", tr)
	}
	assertNoneInEtcd(t, s, resp.Secret)
	stored, ok := s.cfg.Triggers.Trigger("default", "web")
	if !ok {
		t.Fatal("the trigger is not stored")
	}
	if plain, err := trigger.OpenSecret(s.cfg.KEK, "default", "web", stored.SealedSecret); err != nil || string(plain) != resp.Secret {
		t.Fatalf("the stored secret opens to %q (%v), want the one answered", plain, err)
	}
	// Bound to its trigger: another trigger's record does not open it.
	if _, err := trigger.OpenSecret(s.cfg.KEK, "default", "other", stored.SealedSecret); err == nil {
		t.Error("the sealed secret opens as another trigger's")
	}
	list, err := s.ListTriggers(ctx, &berthv1.ListTriggersRequest{})
	if err != nil || len(list.Triggers) != 1 || list.Triggers[0].Trigger.SealedSecret != nil || list.Triggers[0].HookPath != "/hooks/web" {
		t.Fatalf("ListTriggers = %v, %v", list, err)
	}
	_, err = s.CreateTrigger(ctx, goodTrigger())
	wantCode(t, "a second trigger web", err, codes.AlreadyExists, `trigger "web" exists`)

	if _, err := s.RemoveTrigger(ctx, &berthv1.RemoveTriggerRequest{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	_, err = s.RemoveTrigger(ctx, &berthv1.RemoveTriggerRequest{Name: "web"})
	wantCode(t, "removing it again", err, codes.NotFound, `trigger "web" not found`)
	_, err = s.ListTriggerRuns(ctx, &berthv1.ListTriggerRunsRequest{Name: "web"})
	wantCode(t, "runs of a removed trigger", err, codes.NotFound)
}

func TestCreateTriggerRefusesBadInput(t *testing.T) {
	s := newTriggerServer(t)
	tests := []struct {
		name   string
		change func(*berthv1.CreateTriggerRequest)
		want   []string
	}{
		{"no service", func(r *berthv1.CreateTriggerRequest) { r.Service = "shop/nope" }, []string{"service", "shop/nope not found"}},
		{"service not APP/SERVICE", func(r *berthv1.CreateTriggerRequest) { r.Service = "web" }, []string{"service", "APP/SERVICE"}},
		{"no git", func(r *berthv1.CreateTriggerRequest) { r.Git = "" }, []string{"git", "--git"}},
		{"not a git URL", func(r *berthv1.CreateTriggerRequest) { r.Git = "https://example.com/page" }, []string{"git", "must end in .git"}},
		{"git URL with a ref", func(r *berthv1.CreateTriggerRequest) { r.Git = "git://h/shop#dev" }, []string{"git", "--branch"}},
		{"no branch", func(r *berthv1.CreateTriggerRequest) { r.Branch = "" }, []string{"branch", "--branch"}},
		{"a ref for a branch", func(r *berthv1.CreateTriggerRequest) { r.Branch = "refs/heads/main" }, []string{"branch", "not a branch name"}},
		{"path out of the repository", func(r *berthv1.CreateTriggerRequest) { r.Path = "../etc" }, []string{"path", "not a directory of the repository"}},
		{"image with a tag", func(r *berthv1.CreateTriggerRequest) { r.Image = "127.0.0.1:5000/team/web:1" }, []string{"image", "has a tag or digest"}},
		{"bad image", func(r *berthv1.CreateTriggerRequest) { r.Image = "Team/Web" }, []string{"image", "not an image repository"}},
		{"bad name", func(r *berthv1.CreateTriggerRequest) { r.Name = "Web Hook" }, []string{"name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := goodTrigger()
			tt.change(req)
			_, err := s.CreateTrigger(context.Background(), req)
			wantCode(t, tt.name, err, codes.InvalidArgument, tt.want...)
			if got := s.cfg.Triggers.Triggers.List(); len(got) != 0 {
				t.Fatalf("a refused trigger was stored: %v", got)
			}
		})
	}
}

func TestTriggerDeploy(t *testing.T) {
	s := newTriggerServer(t)
	ctx := context.Background()
	c := s.TriggerCluster()
	before := storedService(t, s, "default", "shop", "web")
	const digest = "sha256:" + "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12"
	image := "127.0.0.1:5000/team/web@" + digest
	version, changed, err := c.Deploy(ctx, "default", "shop", "web", image, digest, "trigger web: commit abc of main")
	if err != nil || !changed || version != before.SpecVersion+1 {
		t.Fatalf("Deploy = %d, %v, %v; want version %d, changed", version, changed, err, before.SpecVersion+1)
	}
	after := storedService(t, s, "default", "shop", "web")
	if after.Spec.Image != image || after.Spec.ImageDigest != digest || after.ChangeCause != "trigger web: commit abc of main" ||
		after.UpdateStatus.GetState() != berthv1.UpdateState_UPDATE_STATE_UPDATING || after.Spec.Replicas != 2 {
		t.Errorf("service after Deploy: %v", after)
	}
	if v, changed, err := c.Deploy(ctx, "default", "shop", "web", image, digest, "again"); err != nil || changed || v != version {
		t.Errorf("Deploy of the digest it runs = %d, %v, %v; want version %d unchanged", v, changed, err, version)
	}
	if _, _, err := c.Deploy(ctx, "default", "shop", "gone", image, digest, "x"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("Deploy to a missing service: %v", err)
	}
}

func TestRolloutEnded(t *testing.T) {
	at := func(version uint64, st berthv1.UpdateState, msg string) *berthv1.Service {
		return &berthv1.Service{SpecVersion: version, ChangeCause: "apply", UpdateStatus: &berthv1.UpdateStatus{State: st, Message: msg}}
	}
	tests := []struct {
		name string
		svc  *berthv1.Service
		done bool
		want string // error text; "" for success
	}{
		{"updating", at(3, berthv1.UpdateState_UPDATE_STATE_UPDATING, ""), false, ""},
		{"completed", at(3, berthv1.UpdateState_UPDATE_STATE_COMPLETED, ""), true, ""},
		{"paused", at(3, berthv1.UpdateState_UPDATE_STATE_PAUSED, "task 4f2a failed: exit code 1"), true, "update paused: task 4f2a failed"},
		{"rolled back", at(4, berthv1.UpdateState_UPDATE_STATE_ROLLBACK_STARTED, "update failed"), true, "rolled back: update failed"},
		{"replaced", at(4, berthv1.UpdateState_UPDATE_STATE_UPDATING, ""), true, "replaced by version 4 (apply)"},
	}
	for _, tt := range tests {
		done, err := rolloutEnded(tt.svc, 3)
		if done != tt.done || (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: rolloutEnded = %v, %v; want %v, %q", tt.name, done, err, tt.done, tt.want)
		}
	}
}

// A key a trigger signs with is not removed, since every run of the
// trigger would then fail; once the trigger is gone, the key goes.
func TestRemoveKeyUsedByTrigger(t *testing.T) {
	s := newTriggerServer(t)
	withTrust(t, s)
	ctx := context.Background()
	if _, err := s.GenerateKey(ctx, &berthv1.GenerateKeyRequest{Name: "release"}); err != nil {
		t.Fatal(err)
	}
	req := goodTrigger()
	req.SignKey = "release"
	if _, err := s.CreateTrigger(ctx, req); err != nil {
		t.Fatal(err)
	}
	_, err := s.RemoveKey(ctx, &berthv1.RemoveKeyRequest{Name: "release"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "triggers web build") {
		t.Fatalf("RemoveKey of a key trigger web signs with: %v, want FailedPrecondition naming the trigger", err)
	}
	if keys, err := s.ListKeys(ctx, &berthv1.ListKeysRequest{}); err != nil || len(keys.Keys) != 1 {
		t.Fatalf("after the refusal: keys %v, %v; want the key kept", keys, err)
	}
	if _, err := s.RemoveTrigger(ctx, &berthv1.RemoveTriggerRequest{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(s.triggersSigningWith("default", "release")) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the removed trigger is still listed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := s.RemoveKey(ctx, &berthv1.RemoveKeyRequest{Name: "release"}); err != nil {
		t.Fatalf("RemoveKey once no trigger signs with it: %v", err)
	}
}

// A trigger that signs names a key of its namespace.
func TestCreateTriggerRefusesUnknownKey(t *testing.T) {
	s := newTriggerServer(t)
	withTrust(t, s)
	req := goodTrigger()
	req.SignKey = "nokey"
	_, err := s.CreateTrigger(context.Background(), req)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `key "nokey" not found`) {
		t.Fatalf("CreateTrigger signing with an unknown key: %v, want InvalidArgument naming it", err)
	}
	if got := s.cfg.Triggers.Triggers.List(); len(got) != 0 {
		t.Fatalf("a refused trigger was stored: %v", got)
	}
}
