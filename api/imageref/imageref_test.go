package imageref

import "testing"

const dgst = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParse(t *testing.T) {
	tests := []struct {
		in                                       string
		full, host, path, repo, tag, digest, fam string
		name                                     string
	}{
		{in: "busybox", full: "docker.io/library/busybox:latest", host: "docker.io", path: "library/busybox", repo: "docker.io/library/busybox", tag: "latest", fam: "busybox:latest", name: "docker.io/library/busybox:latest"},
		{in: "busybox:1.36", full: "docker.io/library/busybox:1.36", host: "docker.io", path: "library/busybox", repo: "docker.io/library/busybox", tag: "1.36", fam: "busybox:1.36", name: "docker.io/library/busybox:1.36"},
		{in: "docker.io/library/redis:latest", full: "docker.io/library/redis:latest", host: "docker.io", path: "library/redis", repo: "docker.io/library/redis", tag: "latest", fam: "redis:latest", name: "docker.io/library/redis:latest"},
		{in: "index.docker.io/team/app", full: "docker.io/team/app:latest", host: "docker.io", path: "team/app", repo: "docker.io/team/app", tag: "latest", fam: "team/app:latest", name: "docker.io/team/app:latest"},
		{in: "localhost/busybox", full: "localhost/busybox:latest", host: "localhost", path: "busybox", repo: "localhost/busybox", tag: "latest", fam: "localhost/busybox:latest", name: "localhost/busybox:latest"},
		{in: "127.0.0.1:5000/team/app:v1", full: "127.0.0.1:5000/team/app:v1", host: "127.0.0.1:5000", path: "team/app", repo: "127.0.0.1:5000/team/app", tag: "v1", fam: "127.0.0.1:5000/team/app:v1", name: "127.0.0.1:5000/team/app:v1"},
		{in: "busybox@" + dgst, full: "docker.io/library/busybox@" + dgst, host: "docker.io", path: "library/busybox", repo: "docker.io/library/busybox", digest: dgst, fam: "busybox@" + dgst, name: "docker.io/library/busybox"},
		{in: "app:2@" + dgst, full: "docker.io/library/app:2@" + dgst, host: "docker.io", path: "library/app", repo: "docker.io/library/app", tag: "2", digest: dgst, fam: "app:2@" + dgst, name: "docker.io/library/app:2"},
	}
	for _, tt := range tests {
		r, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		got := []string{r.String(), r.Host(), r.Path(), r.Repository(), r.Tag(), r.Digest(), r.Familiar(), r.Name()}
		want := []string{tt.full, tt.host, tt.path, tt.repo, tt.tag, tt.digest, tt.fam, tt.name}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("Parse(%q): got %q, want %q (String, Host, Path, Repository, Tag, Digest, Familiar, Name #%d)", tt.in, got[i], want[i], i)
			}
		}
		if r.Pinned() != (tt.digest != "") {
			t.Errorf("Parse(%q).Pinned() = %v", tt.in, r.Pinned())
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, in := range []string{"", "Bad Ref", "team/UPPER:1", "app@sha256:short", "a:b:c"} {
		if r, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %q, want an error", in, r)
		}
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"redis", "docker.io/library/redis:latest"},
		{"redis:7", "docker.io/library/redis:7"},
		{"registry.local:5000/team/app", "registry.local:5000/team/app:latest"},
	}
	for _, tt := range tests {
		if got, err := Normalize(tt.in); err != nil || got != tt.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if got := NormalizeOr("Not A Ref"); got != "Not A Ref" {
		t.Errorf("NormalizeOr kept %q as %q", "Not A Ref", got)
	}
}

func TestWithDigest(t *testing.T) {
	r, _ := Parse("127.0.0.1:5000/app:1")
	p, err := r.WithDigest(dgst)
	if err != nil {
		t.Fatal(err)
	}
	if want := "127.0.0.1:5000/app@" + dgst; p.String() != want || !p.Pinned() || p.Tag() != "" {
		t.Errorf("WithDigest = %q (tag %q), want %q", p, p.Tag(), want)
	}
	if _, err := r.WithDigest("sha256:nothex"); err == nil {
		t.Errorf("WithDigest accepted a bad digest")
	}
	if _, err := (Ref{}).WithDigest(dgst); err == nil {
		t.Errorf("WithDigest on the zero Ref succeeded")
	}
}
