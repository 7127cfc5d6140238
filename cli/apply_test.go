package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
)

// writeCompose writes a Compose file into a fresh directory and returns its path.
func writeCompose(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "compose.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const shopCompose = `
name: shop
services:
  web:
    image: shop/web:1
    ports: ["8080:80"]
    cpu_shares: 512
  worker:
    image: shop/worker:1
    deploy:
      replicas: 2
`

func TestApplyPrintsChangesAndWarnings(t *testing.T) {
	changes := []*berthv1.ServiceChange{
		{Service: "web", Action: berthv1.ChangeAction_CHANGE_ACTION_CREATE},
		{Service: "worker", Action: berthv1.ChangeAction_CHANGE_ACTION_UPDATE, Fields: []string{"replicas", "image"}},
		{Service: "old", Action: berthv1.ChangeAction_CHANGE_ACTION_REMOVE},
		{Service: "db", Action: berthv1.ChangeAction_CHANGE_ACTION_UNCHANGED},
	}
	file := writeCompose(t, shopCompose)
	tests := []struct {
		name   string
		dryRun bool
		want   string
	}{
		{"apply", false, "service web created\nservice worker updated (replicas, image)\nservice old removed\nservice db unchanged\n"},
		{"dry run", true, "service web would be created\nservice worker would be updated (replicas, image)\nservice old would be removed\nservice db unchanged\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeCluster{applyResp: &berthv1.ApplyResponse{Changes: changes}}
			cfg := serve(t, f)
			args := []string{"apply", "-f", file, "-n", "team-a"}
			if tt.dryRun {
				args = append(args, "--dry-run")
			}
			r := mustRun(t, cfg, args...)
			if r.stdout != tt.want {
				t.Errorf("stdout = %q, want %q", r.stdout, tt.want)
			}
			if !strings.Contains(r.stderr, "warning: ") || !strings.Contains(r.stderr, "cpu_shares") {
				t.Errorf("stderr = %q, want a warning about cpu_shares", r.stderr)
			}
			if len(f.applyReqs) != 1 {
				t.Fatalf("Apply called %d times, want 1", len(f.applyReqs))
			}
			req := f.applyReqs[0]
			if req.Namespace != "team-a" || req.App != "shop" || req.DryRun != tt.dryRun || len(req.Services) != 2 {
				t.Fatalf("Apply request = namespace %q app %q dry run %v, %d services", req.Namespace, req.App, req.DryRun, len(req.Services))
			}
			if web := req.Services[0]; web.GetName() != "web" || web.GetSpec().GetImage() != "shop/web:1" {
				t.Errorf("first service = %v, want web with image shop/web:1", web)
			}
		})
	}
}

func TestApplyProjectName(t *testing.T) {
	f := &fakeCluster{applyResp: &berthv1.ApplyResponse{}}
	cfg := serve(t, f)
	file := writeCompose(t, shopCompose)
	mustRun(t, cfg, "apply", "-f", file, "-p", "store")
	mustRun(t, cfg, "apply", "-f", file, "--project-name", "outlet")
	if got := []string{f.applyReqs[0].App, f.applyReqs[1].App}; got[0] != "store" || got[1] != "outlet" {
		t.Errorf("apps = %v, want [store outlet]", got)
	}
}

func TestApplyServerValidationErrors(t *testing.T) {
	f := &fakeCluster{applyErr: validation.Errors{
		{Service: "web", Field: "ports[0].published", Reason: "port 8080 is published twice"},
		{Service: "worker", Field: "deploy.replicas", Reason: "must be at most 1000"},
	}}
	cfg := serve(t, f)
	r := run(t, cfg, nil, "apply", "-f", writeCompose(t, shopCompose))
	if r.code == 0 {
		t.Fatalf("exit 0, want failure")
	}
	for _, want := range []string{
		`berth: service "web": ports[0].published: port 8080 is published twice` + "\n",
		`berth: service "worker": deploy.replicas: must be at most 1000` + "\n",
		"berth: 2 problems found; nothing was changed\n",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

func TestApplyComposeValidationErrors(t *testing.T) {
	f := &fakeCluster{applyResp: &berthv1.ApplyResponse{}}
	cfg := serve(t, f)
	file := writeCompose(t, `
name: shop
services:
  web:
    image: shop/web:1
    stop_signal: SIGNOPE
  worker:
    image: shop/worker:1
    deploy:
      placement:
        constraints: ["node.labels.zone=eu"]
`)
	r := run(t, cfg, nil, "apply", "-f", file)
	if r.code == 0 {
		t.Fatalf("exit 0, want failure; stdout %q", r.stdout)
	}
	if len(f.applyReqs) != 0 {
		t.Errorf("Apply was called despite invalid input")
	}
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	var errLines int
	for _, l := range lines {
		if strings.HasPrefix(l, "berth: ") && !strings.Contains(l, "problems found") {
			errLines++
			if !strings.Contains(l, "compose.yaml") {
				t.Errorf("error line does not name the file: %q", l)
			}
		}
	}
	if errLines < 2 {
		t.Errorf("got %d error lines, want one per problem (2):\n%s", errLines, r.stderr)
	}
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "berth: 2 problems found; nothing was changed") {
		t.Errorf("last line = %q", last)
	}
}

const storageCompose = `
name: shop
services:
  db:
    image: postgres:16
    volumes: ["data:/var/lib/postgresql/data"]
    secrets: [pw, shared]
    configs: [conf]
volumes:
  data: {}
secrets:
  pw: {file: ./pw.txt}
  shared: {external: true}
configs:
  conf: {content: "max_connections=${MAX}"}
`

// TestApplySendsStorage checks that the app's volumes, secrets (with
// their data) and configs go with the request, and that no output shows
// a secret's data, --diff included.
func TestApplySendsStorage(t *testing.T) {
	file := writeCompose(t, storageCompose)
	if err := os.WriteFile(filepath.Join(filepath.Dir(file), "pw.txt"), []byte("s3cr3t-data"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MAX", "50")
	f := &fakeCluster{applyResp: &berthv1.ApplyResponse{}}
	cfg := serve(t, f)
	r := mustRun(t, cfg, "apply", "-f", file, "--diff")
	if len(f.applyReqs) != 1 {
		t.Fatalf("%d applies, want 1", len(f.applyReqs))
	}
	req := f.applyReqs[0]
	want := &berthv1.ApplyRequest{
		Volumes: []*berthv1.AppVolume{{Name: "shop_data", Key: "data"}},
		Secrets: []*berthv1.AppFile{{Name: "shop_pw", Key: "pw", Data: []byte("s3cr3t-data")}, {Name: "shared", Key: "shared", External: true}},
		Configs: []*berthv1.AppFile{{Name: "shop_conf", Key: "conf", Data: []byte("max_connections=50")}},
	}
	got := &berthv1.ApplyRequest{Volumes: req.Volumes, Secrets: req.Secrets, Configs: req.Configs}
	if !proto.Equal(got, want) {
		t.Errorf("Apply request's storage =\n%v\nwant\n%v", got, want)
	}
	db := req.Services[0].GetSpec()
	if len(db.GetMounts()) != 1 || db.GetMounts()[0].GetSource() != "shop_data" || len(db.GetSecrets()) != 2 || len(db.GetConfigs()) != 1 {
		t.Errorf("db spec = %v, want its volume, two secrets and a config", db)
	}
	if out := r.stdout + r.stderr; strings.Contains(out, "s3cr3t-data") {
		t.Errorf("the output shows the secret's data:\n%s", out)
	}
	if !strings.Contains(r.stdout, `    + secrets: {name: "shop_pw"}`) {
		t.Errorf("--diff does not show the secret by name:\n%s", r.stdout)
	}
}

func TestApplyStorageErrorsChangeNothing(t *testing.T) {
	f := &fakeCluster{applyResp: &berthv1.ApplyResponse{}}
	cfg := serve(t, f)
	r := run(t, cfg, nil, "apply", "-f", writeCompose(t, storageCompose))
	if r.code == 0 || len(f.applyReqs) != 0 {
		t.Fatalf("exit %d with %d applies, want a failure and none", r.code, len(f.applyReqs))
	}
	// pw.txt was never written.
	if want := `compose.yaml:12: secrets.pw.file: secret "pw": cannot read file `; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
	}
}
