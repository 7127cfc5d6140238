package cli

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
)

// diffBase is a spec as Compose conversion makes it.
func diffBase() *berthv1.ServiceSpec {
	return &berthv1.ServiceSpec{
		Image:    "web:1",
		Command:  []string{"sh", "-c", "serve"},
		Env:      []string{"A=1", "B=2"},
		Labels:   map[string]string{"tier": "front"},
		Ports:    []*berthv1.PortSpec{{Target: 80, Published: 8080}},
		Replicas: 1,
		Limits:   &berthv1.Resources{MemoryBytes: 64 << 20},
		Healthcheck: &berthv1.HealthCheck{
			Test: []string{"CMD", "true"}, Interval: durationpb.New(10 * time.Second), Retries: 3,
		},
	}
}

// stored is spec as the server keeps it: normalized, its image pinned.
func stored(spec *berthv1.ServiceSpec) *berthv1.ServiceSpec {
	s := proto.Clone(spec).(*berthv1.ServiceSpec)
	validation.Normalize(s)
	s.ImageDigest = "sha256:aaaa"
	return s
}

func TestDiffSpecs(t *testing.T) {
	tests := []struct {
		name   string
		change func(*berthv1.ServiceSpec)
		want   []string
	}{
		{"unchanged", func(*berthv1.ServiceSpec) {}, nil},
		{"changed scalar", func(s *berthv1.ServiceSpec) { s.Replicas = 2 }, []string{"~ deploy.replicas: 1 → 2"}},
		{"changed image keeps the digest out of it", func(s *berthv1.ServiceSpec) { s.Image = "web:2" }, []string{`~ image: "web:1" → "web:2"`}},
		{"scalar set", func(s *berthv1.ServiceSpec) { s.User = "app" }, []string{`+ user: "app"`}},
		{"environment changed, added, removed", func(s *berthv1.ServiceSpec) { s.Env = []string{"A=9", "C=3"} },
			[]string{`~ environment.A: "1" → "9"`, `- environment.B: "2"`, `+ environment.C: "3"`}},
		{"map entry added and removed, by key", func(s *berthv1.ServiceSpec) { s.Labels = map[string]string{"team": "shop"} },
			[]string{`+ labels.team: "shop"`, `- labels.tier: "front"`}},
		{"list item added", func(s *berthv1.ServiceSpec) {
			s.Ports = append(s.Ports, &berthv1.PortSpec{Target: 443, Published: 8443})
		}, []string{`+ ports: {target: 443, published: 8443, protocol: "tcp", mode: ingress}`}},
		{"list item removed", func(s *berthv1.ServiceSpec) { s.Ports = nil },
			[]string{`- ports: {target: 80, published: 8080, protocol: "tcp", mode: ingress}`}},
		{"argv list shown whole", func(s *berthv1.ServiceSpec) { s.Command = []string{"sh", "-c", "serve --fast"} },
			[]string{`~ command: ["sh", "-c", "serve"] → ["sh", "-c", "serve --fast"]`}},
		{"nested messages", func(s *berthv1.ServiceSpec) {
			s.Limits.MemoryBytes = 128 << 20
			s.Healthcheck.Interval = durationpb.New(5 * time.Second)
			s.Healthcheck.Retries = 0
		}, []string{
			"~ deploy.resources.limits.memory_bytes: 67108864 → 134217728",
			"~ healthcheck.interval: 10s → 5s",
			"- healthcheck.retries: 3",
		}},
		{"enum by its short name", func(s *berthv1.ServiceSpec) {
			s.Mode = berthv1.ServiceMode_SERVICE_MODE_GLOBAL
			s.Replicas = 0
		}, []string{"~ deploy.mode: replicated → global", "- deploy.replicas: 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := diffBase()
			tt.change(next)
			var got []string
			for _, l := range diffSpecs(stored(diffBase()), next) {
				got = append(got, l.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("diff:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestDiffFileReferences(t *testing.T) {
	base := func() *berthv1.ServiceSpec {
		s := diffBase()
		s.Secrets = []*berthv1.FileReference{{Name: "shop_pw", Target: "/run/secrets/pw"}, {Name: "shop_key", Target: "/run/secrets/key"}}
		s.Configs = []*berthv1.FileReference{{Name: "shop_cfg", Target: "/cfg"}}
		return s
	}
	// The server gave the stored references a version and a digest.
	cur := stored(base())
	for i, r := range append(cur.Secrets, cur.Configs...) {
		r.Version, r.Digest = uint64(i+1), fmt.Sprintf("hmac-sha256:%02d", i+1)
	}
	tests := []struct {
		name   string
		change func(*berthv1.ServiceSpec)
		want   []string
	}{
		{"unchanged: the stored versions are kept", func(*berthv1.ServiceSpec) {}, nil},
		{"mode and target change by name", func(s *berthv1.ServiceSpec) {
			s.Secrets[0].Mode = 0o400
			s.Configs[0].Target = "/etc/cfg"
		}, []string{
			"~ secrets.shop_pw.mode: 0444 → 0400",
			`~ configs.shop_cfg.target: "/cfg" → "/etc/cfg"`,
		}},
		{"added and removed show name, version and digest only", func(s *berthv1.ServiceSpec) {
			s.Secrets = []*berthv1.FileReference{{Name: "shop_pw", Target: "/run/secrets/pw"}, {Name: "shop_new", Target: "/run/secrets/new", Uid: 7}}
		}, []string{
			`- secrets: {name: "shop_key", version: 2, digest: "hmac-sha256:02"}`,
			`+ secrets: {name: "shop_new"}`,
		}},
		{"one secret at two targets", func(s *berthv1.ServiceSpec) {
			s.Secrets = append(s.Secrets, &berthv1.FileReference{Name: "shop_pw", Target: "/etc/pw"})
		}, []string{
			// The server gives it the version it holds.
			`+ secrets: {name: "shop_pw", version: 1, digest: "hmac-sha256:01"}`,
		}},
		{"one secret at two targets, one changed", func(s *berthv1.ServiceSpec) {
			s.Secrets = append(s.Secrets, &berthv1.FileReference{Name: "shop_pw", Target: "/etc/pw"})
			s.Secrets[0].Uid = 5
		}, []string{
			"+ secrets.shop_pw[/run/secrets/pw].uid: 5",
			`+ secrets: {name: "shop_pw", version: 1, digest: "hmac-sha256:01"}`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := base()
			tt.change(next)
			var got []string
			for _, l := range diffSpecs(cur, next) {
				got = append(got, l.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("diff:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestDiffServices(t *testing.T) {
	cur := map[string]*berthv1.ServiceSpec{
		"web": stored(diffBase()),
		"old": stored(&berthv1.ServiceSpec{Image: "old:1", Replicas: 1}),
		"db":  stored(&berthv1.ServiceSpec{Image: "db:1", Replicas: 1}),
	}
	web := diffBase()
	web.Replicas = 3
	services := []*berthv1.Service{
		{Name: "web", Spec: web},
		{Name: "db", Spec: &berthv1.ServiceSpec{Image: "db:1", Replicas: 1}},
		{Name: "cache", Spec: &berthv1.ServiceSpec{Image: "cache:1", Replicas: 1}},
	}
	got := diffServices(cur, services)
	want := []string{
		"+ service cache",
		`    + image: "cache:1"`,
	}
	if len(got) < 2 || !slices.Equal(got[:2], want) {
		t.Fatalf("diff starts:\n%s\nwant it to start:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The new service's fields are all shown; then, db being unchanged,
	// the removed and changed services by name.
	rest := got[2:]
	i := slices.Index(rest, "- service old")
	if i < 0 || !slices.Equal(rest[i:], []string{"- service old", "~ service web", "    ~ deploy.replicas: 1 → 3"}) {
		t.Fatalf("diff:\n%s\nwant old removed, then web's replicas, and nothing of db", strings.Join(got, "\n"))
	}
	for _, l := range rest[:i] {
		if !strings.HasPrefix(l, "    + ") {
			t.Errorf("line %q of the new service is not an added field", l)
		}
	}
}

func TestApplyDiffDryRun(t *testing.T) {
	// On the network apply puts a service of app shop that names none.
	worker := stored(&berthv1.ServiceSpec{Image: "shop/worker:1", Replicas: 1, Networks: []*berthv1.ServiceNetwork{{Network: "shop_default"}}})
	f := &fakeCluster{
		services: []*berthv1.ServiceSummary{{Service: &berthv1.Service{App: "shop", Name: "worker", Spec: worker}}},
		applyResp: &berthv1.ApplyResponse{Changes: []*berthv1.ServiceChange{
			{Service: "web", Action: berthv1.ChangeAction_CHANGE_ACTION_CREATE},
			{Service: "worker", Action: berthv1.ChangeAction_CHANGE_ACTION_UPDATE, Fields: []string{"replicas"}},
		}},
	}
	cfg := serve(t, f)
	r := mustRun(t, cfg, "apply", "-f", writeCompose(t, shopCompose), "--diff", "--dry-run")
	for _, want := range []string{"+ service web\n", `    + image: "shop/web:1"` + "\n", "~ service worker\n    ~ deploy.replicas: 1 → 2\nservice web would be created\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if len(f.applyReqs) != 1 || !f.applyReqs[0].DryRun {
		t.Errorf("Apply requests %v, want one dry run", f.applyReqs)
	}
	if len(f.serviceReqs) != 1 || f.serviceReqs[0].App != "shop" {
		t.Errorf("ListServices requests %v, want the app's services", f.serviceReqs)
	}
}

func TestColorDiffLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"~ service web", colorYellow + "~ service web" + colorReset},
		{"    + image: \"a\"", "    " + colorGreen + "+ image: \"a\"" + colorReset},
		{"- service old", colorRed + "- service old" + colorReset},
		{"service web updated", "service web updated"},
	}
	for _, tt := range tests {
		if got := colorDiffLine(tt.in); got != tt.want {
			t.Errorf("colorDiffLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
