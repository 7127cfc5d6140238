package cli

import (
	"context"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// triggerFake answers the trigger methods.
type triggerFake struct {
	*fakeCluster
	mu      sync.Mutex
	creates []*berthv1.CreateTriggerRequest
	runs    []*berthv1.TriggerRun
}

func (f *triggerFake) CreateTrigger(ctx context.Context, req *berthv1.CreateTriggerRequest) (*berthv1.CreateTriggerResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates = append(f.creates, req)
	if req.Service == "shop/nope" {
		return nil, status.Error(codes.InvalidArgument, `service: service shop/nope not found in namespace "default"`)
	}
	app, svc, _ := strings.Cut(req.Service, "/")
	return &berthv1.CreateTriggerResponse{
		Trigger:  &berthv1.Trigger{Namespace: "default", Name: req.Name, Git: req.Git, Branch: req.Branch, Image: req.Image, App: app, Service: svc},
		Secret:   "5ec2e7",
		HookPath: "/hooks/" + req.Name,
	}, nil
}

func (f *triggerFake) ListTriggerRuns(ctx context.Context, req *berthv1.ListTriggerRunsRequest) (*berthv1.ListTriggerRunsResponse, error) {
	return &berthv1.ListTriggerRunsResponse{Runs: f.runs}, nil
}

func (f *triggerFake) GetTriggerRunLog(ctx context.Context, req *berthv1.GetTriggerRunLogRequest) (*berthv1.GetTriggerRunLogResponse, error) {
	return &berthv1.GetTriggerRunLogResponse{Run: f.runs[0], Log: &berthv1.TriggerRunLog{Text: "#1 [1/1] FROM base\n#1 DONE\n"}}, nil
}

func TestTriggerCreate(t *testing.T) {
	f := &triggerFake{fakeCluster: &fakeCluster{}}
	cfg := serve(t, f)
	r := mustRun(t, cfg, "trigger", "create", "web", "--git", "git://127.0.0.1:9418/shop", "--branch", "main", "--path", "web",
		"--image", "127.0.0.1:5000/team/web", "--service", "shop/web", "--sign", "release")
	for _, want := range []string{"trigger web created", "webhook path:   /hooks/web", "webhook secret: 5ec2e7\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	want := &berthv1.CreateTriggerRequest{Namespace: "default", Name: "web", Git: "git://127.0.0.1:9418/shop", Branch: "main", Path: "web",
		Image: "127.0.0.1:5000/team/web", Service: "shop/web", SignKey: "release"}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.creates) != 1 || !proto.Equal(f.creates[0], want) {
		t.Errorf("requests = %v, want %v", f.creates, want)
	}
}

func TestTriggerCreateRefused(t *testing.T) {
	f := &triggerFake{fakeCluster: &fakeCluster{}}
	cfg := serve(t, f)
	r := run(t, cfg, nil, "trigger", "create", "web", "--git", "git://h/shop", "--branch", "main", "--image", "h/web", "--service", "shop/nope")
	if r.code == 0 || !strings.Contains(r.stderr, "create trigger web: service: service shop/nope not found") || strings.Contains(r.stdout, "secret") {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestTriggerRunsAndLogs(t *testing.T) {
	f := &triggerFake{fakeCluster: &fakeCluster{}, runs: []*berthv1.TriggerRun{{
		Id: "r1abc", Trigger: "web", Commit: strings.Repeat("a", 40), Branch: "main",
		State: berthv1.TriggerRunState_TRIGGER_RUN_STATE_FAILED, Message: "build failed: unknown instruction: FROMM",
		CreatedAt: timestamppb.Now(),
	}}}
	cfg := serve(t, f)
	r := mustRun(t, cfg, "trigger", "runs", "web")
	if !strings.Contains(r.stdout, "r1abc   aaaaaaaaaaaa   failed") || !strings.Contains(r.stdout, "build failed: unknown instruction: FROMM") {
		t.Errorf("runs:\n%s", r.stdout)
	}
	r = mustRun(t, cfg, "trigger", "logs", "r1abc")
	if !strings.Contains(r.stdout, "run r1abc of trigger web") || !strings.HasSuffix(r.stdout, "#1 DONE\n") {
		t.Errorf("logs:\n%s", r.stdout)
	}
}
