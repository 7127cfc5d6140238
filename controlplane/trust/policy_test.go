package trust

import (
	"errors"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func TestValidatePattern(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		ok      bool
	}{
		{"registry.example.com/team/*", true},
		{"127.0.0.1:5000/team/app", true},
		{"localhost/app", true},
		{"registry.example.com/**", true},
		{"*/team/app", true},
		{"docker.io/library/nginx", true},
		{"", false},
		{"team/*", false},                         // no registry host
		{"nginx", false},                          // no repository
		{"registry.example.com", false},           // no repository
		{"registry.example.com/", false},          // empty repository
		{"registry.example.com/team//app", false}, // empty segment
		{"registry.example.com/App", false},       // upper case
		{"registry.example.com/app:1.0", false},   // a tag
		{"registry.example.com/app@sha256:00", false},
		{"registry.example.com/[ab]pp", false},
		{"registry.example.com/a pp", false},
		{"registry.example.com/***", false},
	} {
		err := ValidatePattern(tc.pattern)
		if (err == nil) != tc.ok {
			t.Errorf("ValidatePattern(%q) = %v, want ok=%v", tc.pattern, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrBadPattern) {
			t.Errorf("ValidatePattern(%q) = %v, not ErrBadPattern", tc.pattern, err)
		}
	}
}

func TestMatchPattern(t *testing.T) {
	for _, tc := range []struct {
		pattern, repo string
		want          bool
	}{
		{"reg.example.com/team/*", "reg.example.com/team/app", true},
		{"reg.example.com/team/*", "reg.example.com/team/sub/app", false},
		{"reg.example.com/team/*", "reg.example.com/teamx/app", false},
		{"reg.example.com/team/*", "other.example.com/team/app", false},
		{"reg.example.com/**", "reg.example.com/team/sub/app", true},
		{"reg.example.com/team/**", "reg.example.com/team/app", true},
		{"reg.example.com/team/app", "reg.example.com/team/app", true},
		{"reg.example.com/team/app", "reg.example.com/team/app2", false},
		{"reg.example.com/team/app-?", "reg.example.com/team/app-1", true},
		{"reg.example.com/team/app-?", "reg.example.com/team/app-12", false},
		{"*/team/app", "127.0.0.1:5000/team/app", true},
		{"127.0.0.1:*/team/*", "127.0.0.1:5000/team/app", true},
		{"reg.example.com/*/app", "reg.example.com/a/b/app", false},
		{"reg.example.com/**/app", "reg.example.com/a/b/app", true},
	} {
		if got := MatchPattern(tc.pattern, tc.repo); got != tc.want {
			t.Errorf("MatchPattern(%q, %q) = %v, want %v", tc.pattern, tc.repo, got, tc.want)
		}
	}
}

func TestPolicyFor(t *testing.T) {
	pol := func(ns, pattern string) *berthv1.TrustPolicy {
		return &berthv1.TrustPolicy{Namespace: ns, Pattern: pattern}
	}
	policies := []*berthv1.TrustPolicy{
		pol("default", "reg.example.com/**"),
		pol("default", "reg.example.com/team/*"),
		pol("default", "reg.example.com/team/app"),
		pol("other", "reg.example.com/team/*"),
		pol("default", "*/*/tool"),
	}
	for _, tc := range []struct {
		name, ns, repo, want string
	}{
		{"most specific wins", "default", "reg.example.com/team/app", "reg.example.com/team/app"},
		{"team glob beats registry-wide", "default", "reg.example.com/team/web", "reg.example.com/team/*"},
		{"registry-wide", "default", "reg.example.com/x/y/z", "reg.example.com/**"},
		{"other namespace's policy does not apply", "third", "reg.example.com/team/app", ""},
		{"namespace of its own", "other", "reg.example.com/team/app", "reg.example.com/team/*"},
		{"no match", "default", "127.0.0.1:5000/app", ""},
		{"host glob", "default", "127.0.0.1:5000/ops/tool", "*/*/tool"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := PolicyFor(policies, tc.ns, tc.repo)
			if got.GetPattern() != tc.want {
				t.Fatalf("PolicyFor(%s, %s) = %q, want %q", tc.ns, tc.repo, got.GetPattern(), tc.want)
			}
		})
	}
}

func TestMatchingServices(t *testing.T) {
	svc := func(ns, app, name, image string) *berthv1.Service {
		return &berthv1.Service{Namespace: ns, App: app, Name: name, Spec: &berthv1.ServiceSpec{Image: image}}
	}
	services := []*berthv1.Service{
		svc("default", "shop", "web", "reg.example.com/team/web:1"),
		svc("default", "shop", "db", "postgres:16"),
		svc("other", "shop", "web", "reg.example.com/team/web:1"),
		svc("default", "blog", "api", "reg.example.com/team/api@sha256:"+sixtyFour),
	}
	got := MatchingServices("reg.example.com/team/*", "default", services)
	want := []string{"blog/api", "shop/web"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("MatchingServices = %v, want %v", got, want)
	}
	if got := MatchingServices("reg.example.com/nobody/*", "default", services); len(got) != 0 {
		t.Fatalf("a pattern that matches nothing matched %v", got)
	}
	if got := MatchingServices("docker.io/library/postgres", "default", services); len(got) != 1 || got[0] != "shop/db" {
		t.Fatalf("Docker Hub image: got %v, want [shop/db]", got)
	}
}

const sixtyFour = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
