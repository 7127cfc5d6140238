package gitcontext

import "testing"

func TestIs(t *testing.T) {
	for _, tc := range []struct {
		ref  string
		want bool
	}{
		{"https://git.example.com/team/web.git", true},
		{"https://git.example.com/team/web.git#main:app", true},
		{"http://127.0.0.1:8080/web.git#v1", true},
		{"git://127.0.0.1:9418/web", true},
		{"git://127.0.0.1:9418/web#0123456789abcdef0123456789abcdef01234567:sub", true},
		{"ssh://git@host.example/team/web.git", true},
		{"git@github.com:team/web.git", true},
		// A web page, not a repository: BuildKit wants .git.
		{"https://example.com/team/web", false},
		{".", false},
		{"./app", false},
		{"app", false},
		{"/srv/app", false},
		{"github.com/team/web", false},
	} {
		if got := Is(tc.ref); got != tc.want {
			t.Errorf("Is(%q) = %v, want %v", tc.ref, got, tc.want)
		}
		if err := Check(tc.ref); (err == nil) != tc.want {
			t.Errorf("Check(%q) = %v, want ok=%v", tc.ref, err, tc.want)
		}
	}
}

func TestWithRef(t *testing.T) {
	for _, tc := range []struct{ repo, ref, sub, want string }{
		{"git://h/web", "abc", "", "git://h/web#abc"},
		{"git://h/web#main", "abc", "/app/", "git://h/web#abc:app"},
		{"https://h/web.git", "abc", "a/b", "https://h/web.git#abc:a/b"},
	} {
		if got := WithRef(tc.repo, tc.ref, tc.sub); got != tc.want {
			t.Errorf("WithRef(%q, %q, %q) = %q, want %q", tc.repo, tc.ref, tc.sub, got, tc.want)
		}
	}
}
