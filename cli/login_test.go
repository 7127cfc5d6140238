package cli

import (
	"context"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// registryCluster answers the registry and image calls and records them.
type registryCluster struct {
	berthv1.UnimplementedClusterServiceServer

	loginErr  error
	warning   string
	progress  []*berthv1.ImageProgress
	streamErr error
	settings  *berthv1.ClusterSettings

	mu        sync.Mutex
	logins    []*berthv1.LoginRequest
	logouts   []*berthv1.LogoutRequest
	pulls     []*berthv1.PullImageRequest
	pushes    []*berthv1.PushImageRequest
	settingsR []*berthv1.UpdateSettingsRequest
}

func (f *registryCluster) Login(ctx context.Context, req *berthv1.LoginRequest) (*berthv1.LoginResponse, error) {
	f.mu.Lock()
	f.logins = append(f.logins, req)
	f.mu.Unlock()
	if f.loginErr != nil {
		return nil, f.loginErr
	}
	if f.warning != "" {
		grpc.SetHeader(ctx, metadata.Pairs(warningHeader, f.warning))
	}
	return &berthv1.LoginResponse{}, nil
}

func (f *registryCluster) Logout(_ context.Context, req *berthv1.LogoutRequest) (*berthv1.LogoutResponse, error) {
	f.mu.Lock()
	f.logouts = append(f.logouts, req)
	f.mu.Unlock()
	if req.Registry == "nowhere.example.com" {
		return nil, status.Error(codes.NotFound, "no credential is stored for nowhere.example.com")
	}
	return &berthv1.LogoutResponse{}, nil
}

func (f *registryCluster) ListRegistries(context.Context, *berthv1.ListRegistriesRequest) (*berthv1.ListRegistriesResponse, error) {
	return &berthv1.ListRegistriesResponse{Registries: []*berthv1.RegistryCredential{
		{Registry: "127.0.0.1:5000", Username: "ann", Meta: &berthv1.Meta{UpdatedAt: timestamppb.New(timestamppb.Now().AsTime().Truncate(1e9))}},
		{Registry: "docker.io", Username: "bob"},
	}}, nil
}

func (f *registryCluster) ListNodes(context.Context, *berthv1.ListNodesRequest) (*berthv1.ListNodesResponse, error) {
	return &berthv1.ListNodesResponse{Nodes: []*berthv1.Node{
		{Meta: &berthv1.Meta{Id: "id-alpha"}, Name: "alpha"},
		{Meta: &berthv1.Meta{Id: "id-beta"}, Name: "beta"},
	}}, nil
}

func (f *registryCluster) PullImage(req *berthv1.PullImageRequest, stream grpc.ServerStreamingServer[berthv1.ImageProgress]) error {
	f.mu.Lock()
	f.pulls = append(f.pulls, req)
	f.mu.Unlock()
	for _, p := range f.progress {
		if err := stream.Send(p); err != nil {
			return err
		}
	}
	return f.streamErr
}

func (f *registryCluster) PushImage(req *berthv1.PushImageRequest, stream grpc.ServerStreamingServer[berthv1.ImageProgress]) error {
	f.mu.Lock()
	f.pushes = append(f.pushes, req)
	f.mu.Unlock()
	for _, p := range f.progress {
		if err := stream.Send(p); err != nil {
			return err
		}
	}
	return f.streamErr
}

func (f *registryCluster) GetSettings(context.Context, *berthv1.GetSettingsRequest) (*berthv1.ClusterSettings, error) {
	if f.settings == nil {
		return &berthv1.ClusterSettings{}, nil
	}
	return f.settings, nil
}

func (f *registryCluster) UpdateSettings(_ context.Context, req *berthv1.UpdateSettingsRequest) (*berthv1.ClusterSettings, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.settingsR = append(f.settingsR, req)
	f.settings = req.Settings
	return req.Settings, nil
}

func TestLogin(t *testing.T) {
	cases := []struct {
		name       string
		args       []string
		stdin      string
		loginErr   error
		warning    string
		wantCode   int
		wantReq    *berthv1.LoginRequest
		wantOut    string
		wantErrOut string
	}{
		{name: "password from stdin", args: []string{"login", "127.0.0.1:5000", "-u", "ann", "--password-stdin"}, stdin: "s3cret\n",
			wantReq: &berthv1.LoginRequest{Registry: "127.0.0.1:5000", Username: "ann", Password: "s3cret"}, wantOut: "Login stored for 127.0.0.1:5000 as ann\n"},
		{name: "docker hub by default", args: []string{"login", "-u", "bob", "--password-stdin"}, stdin: "pw",
			wantReq: &berthv1.LoginRequest{Username: "bob", Password: "pw"}, wantOut: "Login stored for docker.io as bob\n"},
		{name: "warning shown", args: []string{"login", "r.example.com", "-u", "ann", "--password-stdin"}, stdin: "pw", warning: "credential stored without checking it",
			wantReq: &berthv1.LoginRequest{Registry: "r.example.com", Username: "ann", Password: "pw"}, wantErrOut: "warning: credential stored without checking it"},
		{name: "refused", args: []string{"login", "r.example.com", "-u", "ann", "--password-stdin"}, stdin: "pw", wantCode: 1,
			loginErr: status.Error(codes.Unauthenticated, "login to r.example.com failed: unauthorized"), wantErrOut: "login to r.example.com failed: unauthorized"},
		{name: "no username off a terminal", args: []string{"login", "r.example.com", "--password-stdin"}, stdin: "pw", wantCode: 1, wantErrOut: "give the username with -u"},
		{name: "no password off a terminal", args: []string{"login", "r.example.com", "-u", "ann"}, wantCode: 1, wantErrOut: "--password-stdin"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &registryCluster{loginErr: tc.loginErr, warning: tc.warning}
			cfg := serve(t, f)
			r := run(t, cfg, strings.NewReader(tc.stdin), tc.args...)
			if (r.code != 0) != (tc.wantCode != 0) {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			if tc.wantOut != "" && r.stdout != tc.wantOut {
				t.Errorf("stdout = %q, want %q", r.stdout, tc.wantOut)
			}
			if tc.wantErrOut != "" && !strings.Contains(r.stderr, tc.wantErrOut) {
				t.Errorf("stderr = %q, want it to contain %q", r.stderr, tc.wantErrOut)
			}
			if tc.wantReq != nil {
				if len(f.logins) != 1 {
					t.Fatalf("%d logins", len(f.logins))
				}
				got := f.logins[0]
				if got.Registry != tc.wantReq.Registry || got.Username != tc.wantReq.Username || got.Password != tc.wantReq.Password {
					t.Errorf("Login request = %v, want %v", got, tc.wantReq)
				}
			}
		})
	}
}

func TestLogoutAndRegistryLs(t *testing.T) {
	f := &registryCluster{}
	cfg := serve(t, f)
	r := mustRun(t, cfg, "logout", "127.0.0.1:5000")
	if r.stdout != "Login removed for 127.0.0.1:5000\n" || len(f.logouts) != 1 || f.logouts[0].Registry != "127.0.0.1:5000" {
		t.Errorf("logout: %q, %v", r.stdout, f.logouts)
	}
	r = run(t, cfg, nil, "logout", "nowhere.example.com")
	if r.code == 0 || !strings.Contains(r.stderr, "no credential is stored for nowhere.example.com") {
		t.Errorf("logout of an unknown registry: exit %d, %q", r.code, r.stderr)
	}
	r = mustRun(t, cfg, "registry", "ls")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "REGISTRY") || !strings.HasPrefix(lines[1], "127.0.0.1:5000") || !strings.Contains(lines[2], "bob") {
		t.Errorf("registry ls:\n%s", r.stdout)
	}
	r = mustRun(t, cfg, "registry", "ls", "-o", "json")
	if !strings.Contains(r.stdout, `"registry": "docker.io"`) || strings.Contains(r.stdout, "secret") {
		t.Errorf("registry ls -o json:\n%s", r.stdout)
	}
}

func TestPullAndPush(t *testing.T) {
	progress := []*berthv1.ImageProgress{
		{NodeId: "id-alpha", NodeName: "alpha", Status: "pulling from registry", DoneBytes: 1024, TotalBytes: 4096},
		{NodeId: "id-alpha", NodeName: "alpha", Status: "pulling from registry", DoneBytes: 2048, TotalBytes: 4096},
		{NodeId: "id-beta", NodeName: "beta", Status: "pulling from peer alpha"},
		{NodeId: "id-alpha", NodeName: "alpha", Done: true, Digest: "sha256:0123456789abcdef0123", TotalBytes: 4096, DoneBytes: 4096},
		{NodeId: "id-beta", NodeName: "beta", Done: true, Error: "registry 127.0.0.1:5000: 401 Unauthorized"},
	}
	f := &registryCluster{progress: progress[:4]}
	cfg := serve(t, f)
	r := mustRun(t, cfg, "pull", "127.0.0.1:5000/app:1", "--node", "alpha", "--node", "beta")
	want := "alpha: pulling from registry 1KiB/4KiB\nbeta: pulling from peer alpha\nalpha: done " + shortDigest("sha256:0123456789abcdef0123") + " 4KiB/4KiB\n"
	if r.stdout != want {
		t.Errorf("pull output:\n%s\nwant:\n%s", r.stdout, want)
	}
	if len(f.pulls) != 1 || f.pulls[0].Image != "127.0.0.1:5000/app:1" || strings.Join(f.pulls[0].NodeIds, ",") != "id-alpha,id-beta" {
		t.Errorf("PullImage request = %v", f.pulls)
	}

	f = &registryCluster{progress: progress, streamErr: status.Error(codes.Aborted, "pull of 127.0.0.1:5000/app:1 failed on 1 of 2 nodes")}
	cfg = serve(t, f)
	r = run(t, cfg, nil, "pull", "127.0.0.1:5000/app:1")
	if r.code == 0 || !strings.Contains(r.stdout, "beta: error: registry 127.0.0.1:5000: 401 Unauthorized") || !strings.Contains(r.stderr, "failed on 1 of 2 nodes") {
		t.Errorf("failed pull: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}

	f = &registryCluster{progress: []*berthv1.ImageProgress{{NodeName: "alpha", Status: "pushing"}, {NodeName: "alpha", Done: true}}}
	cfg = serve(t, f)
	r = mustRun(t, cfg, "push", "127.0.0.1:5000/app:1", "--node", "alpha")
	if r.stdout != "alpha: pushing\nalpha: done\n" || len(f.pushes) != 1 || f.pushes[0].Node != "alpha" {
		t.Errorf("push: %q %v", r.stdout, f.pushes)
	}
}

func TestClusterSettingsInsecureRegistries(t *testing.T) {
	f := &registryCluster{settings: &berthv1.ClusterSettings{AutoRebalance: true}}
	cfg := serve(t, f)
	r := mustRun(t, cfg, "cluster", "settings", "--insecure-registry", "127.0.0.1:5000", "--insecure-registry", "r.local")
	if got := f.settingsR[0].Settings; strings.Join(got.InsecureRegistries, ",") != "127.0.0.1:5000,r.local" || !got.AutoRebalance {
		t.Errorf("UpdateSettings = %v", got)
	}
	if !strings.Contains(r.stdout, "Insecure registries:  127.0.0.1:5000, r.local") {
		t.Errorf("stdout = %q", r.stdout)
	}
	r = mustRun(t, cfg, "cluster", "settings", "-o", "json")
	if !strings.Contains(r.stdout, `"insecureRegistries": [`) {
		t.Errorf("json = %s", r.stdout)
	}
	mustRun(t, cfg, "cluster", "settings", "--insecure-registry=")
	if got := f.settingsR[1].Settings.InsecureRegistries; len(got) != 0 {
		t.Errorf("--insecure-registry= left %v", got)
	}
}
