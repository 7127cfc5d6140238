package trigger

import (
	"errors"
	"strings"
	"testing"
)

func TestVerify(t *testing.T) {
	secret := []byte("s3cret")
	body := []byte(`{"ref":"refs/heads/main"}`)
	good := Sign(secret, body)
	if !strings.HasPrefix(good, "sha256=") || len(good) != len("sha256=")+64 {
		t.Fatalf("Sign = %q, want sha256=<64 hex>", good)
	}
	tests := []struct {
		name   string
		header string
		body   []byte
		secret []byte
		want   string // "" means accepted
	}{
		{name: "good", header: good},
		{name: "upper-case hex", header: "sha256=" + strings.ToUpper(strings.TrimPrefix(good, "sha256="))},
		{name: "missing", header: "", want: "no X-Hub-Signature-256 header"},
		{name: "sha1 format", header: "sha1=" + strings.TrimPrefix(good, "sha256=")[:40], want: "must be sha256=<hex>"},
		{name: "not hex", header: "sha256=" + strings.Repeat("zz", 32), want: "not a SHA-256 HMAC in hex"},
		{name: "too short", header: good[:len(good)-2], want: "not a SHA-256 HMAC in hex"},
		{name: "too long", header: good + "00", want: "not a SHA-256 HMAC in hex"},
		{name: "empty hex", header: "sha256=", want: "not a SHA-256 HMAC in hex"},
		{name: "other secret", header: good, secret: []byte("other"), want: "does not match"},
		{name: "body changed", header: good, body: []byte(`{"ref":"refs/heads/evil"}`), want: "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, b := secret, body
			if tt.secret != nil {
				s = tt.secret
			}
			if tt.body != nil {
				b = tt.body
			}
			err := Verify(s, b, tt.header)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Verify = %v, want accepted", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify = %v, want ErrSignature saying %q", err, tt.want)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	const sha = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name   string
		body   string
		want   Decision
		reason string
	}{
		{name: "push to the branch", body: `{"ref":"refs/heads/main","after":"` + sha + `","pusher":{"name":"ann"}}`, want: Decision{Build: true, Commit: sha}},
		{name: "upper-case id", body: `{"ref":"refs/heads/main","after":"` + strings.ToUpper(sha) + `"}`, want: Decision{Build: true, Commit: sha}},
		{name: "another branch", body: `{"ref":"refs/heads/dev","after":"` + sha + `"}`, reason: "push to branch dev ignored: the trigger builds branch main"},
		{name: "a branch named like the start", body: `{"ref":"refs/heads/main2","after":"` + sha + `"}`, reason: "push to branch main2 ignored"},
		{name: "a tag", body: `{"ref":"refs/tags/main","after":"` + sha + `"}`, reason: "push of refs/tags/main ignored"},
		{name: "branch deleted", body: `{"ref":"refs/heads/main","after":"0000000000000000000000000000000000000000","deleted":true}`, reason: "deleting branch main ignored"},
		{name: "not a commit", body: `{"ref":"refs/heads/main","after":"HEAD"}`, reason: `"HEAD" is not a commit id`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePush([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			got := Decide(p, "main")
			if tt.reason != "" {
				if got.Build || !strings.Contains(got.Reason, tt.reason) {
					t.Fatalf("Decide = %+v, want ignored with %q", got, tt.reason)
				}
				return
			}
			if got != tt.want {
				t.Fatalf("Decide = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParsePushErrors(t *testing.T) {
	for _, body := range []string{"", "ref=refs/heads/main", `{"zen":"ping"}`} {
		if _, err := ParsePush([]byte(body)); err == nil {
			t.Errorf("ParsePush(%q) accepted it", body)
		}
	}
}
