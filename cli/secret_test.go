package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
)

// fileCluster keeps secrets and configs in memory, as the server answers
// them: secrets without their data.
type fileCluster struct {
	berthv1.UnimplementedClusterServiceServer

	mu      sync.Mutex
	secrets map[string]*berthv1.CreateSecretRequest
	configs map[string]*berthv1.CreateConfigRequest
	version map[string]uint64
}

func newFileCluster() *fileCluster {
	return &fileCluster{secrets: map[string]*berthv1.CreateSecretRequest{}, configs: map[string]*berthv1.CreateConfigRequest{}, version: map[string]uint64{}}
}

func (f *fileCluster) bump(key string, exists, update, same bool) (uint64, error) {
	switch {
	case exists && !update:
		return 0, status.Errorf(codes.AlreadyExists, "%s already exists; give --update", key)
	case !exists || !same:
		f.version[key]++
	}
	return f.version[key], nil
}

func (f *fileCluster) CreateSecret(_ context.Context, req *berthv1.CreateSecretRequest) (*berthv1.Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, exists := f.secrets[req.Name]
	v, err := f.bump("secret "+req.Name, exists, req.Update, exists && string(cur.Data) == string(req.Data))
	if err != nil {
		return nil, err
	}
	f.secrets[req.Name] = req
	return &berthv1.Secret{Namespace: req.Namespace, Name: req.Name, Version: v, Digest: "hmac-sha256:ab", Size: int64(len(req.Data))}, nil
}

func (f *fileCluster) GetSecret(_ context.Context, req *berthv1.GetSecretRequest) (*berthv1.SecretSummary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, ok := f.secrets[req.Name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "secret %q not found", req.Name)
	}
	return &berthv1.SecretSummary{Secret: &berthv1.Secret{Namespace: cur.Namespace, Name: cur.Name, Version: f.version["secret "+req.Name], Digest: "hmac-sha256:ab", Size: int64(len(cur.Data))},
		Services: []string{"shop/web"}}, nil
}

func (f *fileCluster) ListSecrets(ctx context.Context, req *berthv1.ListSecretsRequest) (*berthv1.ListSecretsResponse, error) {
	resp := &berthv1.ListSecretsResponse{}
	for _, name := range []string{"db_password"} {
		s, err := f.GetSecret(ctx, &berthv1.GetSecretRequest{Name: name})
		if err != nil {
			return nil, err
		}
		resp.Secrets = append(resp.Secrets, s)
	}
	return resp, nil
}

func (f *fileCluster) RemoveSecret(_ context.Context, req *berthv1.RemoveSecretRequest) (*berthv1.RemoveSecretResponse, error) {
	if req.Name == "db_password" {
		return nil, status.Error(codes.FailedPrecondition, `secret "db_password" is used by service shop/web`)
	}
	return &berthv1.RemoveSecretResponse{}, nil
}

func (f *fileCluster) CreateConfig(_ context.Context, req *berthv1.CreateConfigRequest) (*berthv1.Config, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, exists := f.configs[req.Name]
	v, err := f.bump("config "+req.Name, exists, req.Update, exists && string(cur.Data) == string(req.Data))
	if err != nil {
		return nil, err
	}
	f.configs[req.Name] = req
	return &berthv1.Config{Namespace: req.Namespace, Name: req.Name, Version: v, Data: req.Data}, nil
}

func (f *fileCluster) GetConfig(_ context.Context, req *berthv1.GetConfigRequest) (*berthv1.ConfigSummary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, ok := f.configs[req.Name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "config %q not found", req.Name)
	}
	return &berthv1.ConfigSummary{Config: &berthv1.Config{Namespace: cur.Namespace, Name: cur.Name, Version: f.version["config "+req.Name], Data: cur.Data}}, nil
}

func TestSecretCommands(t *testing.T) {
	f := newFileCluster()
	cfg := serve(t, f)

	r := run(t, cfg, strings.NewReader("hunter2"), "secret", "create", "db_password", "-", "--label", "team=core", "-n", "team-a")
	if r.code != 0 || r.stdout != "secret db_password created (version 1)\n" {
		t.Fatalf("secret create from stdin: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if req := f.secrets["db_password"]; string(req.Data) != "hunter2" || req.Namespace != "team-a" || req.Labels["team"] != "core" || req.Update {
		t.Errorf("secret create sent %v", req)
	}
	if r := run(t, cfg, strings.NewReader("x"), "secret", "create", "db_password"); r.code == 0 || !strings.Contains(r.stderr, "--update") {
		t.Errorf("secret create of an existing one: exit %d, %q", r.code, r.stderr)
	}

	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, []byte("n3w"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = mustRun(t, cfg, "secret", "create", "db_password", file, "--update")
	if r.stdout != "secret db_password updated to version 2; rolling out shop/web\n" {
		t.Errorf("secret create --update: %q", r.stdout)
	}
	r = mustRun(t, cfg, "secret", "create", "db_password", file, "--update")
	if !strings.Contains(r.stdout, "unchanged (version 2)") {
		t.Errorf("secret create --update with the same data: %q", r.stdout)
	}

	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, make([]byte, validation.MaxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(t, cfg, nil, "secret", "create", "big", big); r.code == 0 || !strings.Contains(r.stderr, "500 KiB") {
		t.Errorf("secret create of a large file: exit %d, %q", r.code, r.stderr)
	}
	if r := run(t, cfg, nil, "secret", "create", "x", "/nonexistent/file"); r.code == 0 || !strings.Contains(r.stderr, "no such file") {
		t.Errorf("secret create of a missing file: exit %d, %q", r.code, r.stderr)
	}

	r = mustRun(t, cfg, "secret", "ls")
	if !strings.Contains(r.stdout, "NAME") || !strings.Contains(r.stdout, "db_password") || !strings.Contains(r.stdout, "shop/web") {
		t.Errorf("secret ls:\n%s", r.stdout)
	}
	r = mustRun(t, cfg, "secret", "inspect", "db_password", "-o", "json")
	var row map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &row); err != nil {
		t.Fatalf("secret inspect -o json: %v\n%s", err, r.stdout)
	}
	if row["name"] != "db_password" || row["digest"] != "hmac-sha256:ab" || row["version"] != 2.0 {
		t.Errorf("secret inspect -o json: %v", row)
	}
	if strings.Contains(r.stdout, "n3w") || strings.Contains(r.stdout, `"data"`) {
		t.Errorf("secret inspect shows data:\n%s", r.stdout)
	}
	if r := run(t, cfg, nil, "secret", "inspect", "db_password", "--data"); r.code == 0 {
		t.Error("secret inspect takes --data")
	}
	r = run(t, cfg, nil, "secret", "rm", "old", "db_password")
	if r.code == 0 || r.stdout != "secret old removed\n" || !strings.Contains(r.stderr, "used by service shop/web") {
		t.Errorf("secret rm: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
}

func TestConfigCommands(t *testing.T) {
	f := newFileCluster()
	cfg := serve(t, f)
	r := run(t, cfg, strings.NewReader("worker_processes 1;"), "config", "create", "nginx.conf")
	if r.code != 0 || r.stdout != "config nginx.conf created (version 1)\n" {
		t.Fatalf("config create: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	r = mustRun(t, cfg, "config", "inspect", "nginx.conf")
	if strings.Contains(r.stdout, "worker_processes") {
		t.Errorf("config inspect shows the data without --data:\n%s", r.stdout)
	}
	r = mustRun(t, cfg, "config", "inspect", "nginx.conf", "--data")
	if !strings.Contains(r.stdout, "Data:\nworker_processes 1;\n") {
		t.Errorf("config inspect --data:\n%s", r.stdout)
	}
	r = mustRun(t, cfg, "config", "inspect", "nginx.conf", "--data", "-o", "yaml")
	if !strings.Contains(r.stdout, "data: worker_processes 1;") {
		t.Errorf("config inspect --data -o yaml:\n%s", r.stdout)
	}
}

func TestDiffShowsNoVersionOfUnchangedFiles(t *testing.T) {
	ref := func(name string, version uint64, digest string) *berthv1.FileReference {
		return &berthv1.FileReference{Name: name, Target: name, Version: version, Digest: digest}
	}
	stored := map[string]*berthv1.ServiceSpec{"web": {Image: "web:1", Secrets: []*berthv1.FileReference{ref("db", 3, "hmac-sha256:aa")}}}
	validation.Normalize(stored["web"])
	local := []*berthv1.Service{{Name: "web", Spec: &berthv1.ServiceSpec{Image: "web:1", Secrets: []*berthv1.FileReference{ref("db", 0, "")}}}}
	pinFileVersions(stored, local)
	if lines := diffServices(stored, local); len(lines) != 0 {
		t.Errorf("an unchanged secret shows in the diff: %v", lines)
	}
	local[0].Spec.Secrets = append(local[0].Spec.Secrets, ref("api_key", 0, ""))
	pinFileVersions(stored, local)
	lines := diffServices(stored, local)
	if len(lines) < 2 || !strings.Contains(strings.Join(lines, "\n"), "api_key") {
		t.Errorf("a new secret does not show in the diff: %v", lines)
	}
}
