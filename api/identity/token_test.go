package identity

import (
	"errors"
	"strings"
	"testing"
)

func TestTokenRoundTrip(t *testing.T) {
	digest := CADigest([]byte("a CA certificate"))
	tok, err := GenerateToken(digest)
	if err != nil {
		t.Fatalf("GenerateToken: %v", err)
	}
	s := tok.String()
	if want := 8 + digestLen + 1 + tokenIDLen + 1 + tokenSecretLen; len(s) != want {
		t.Errorf("token %q has %d characters, want %d", s, len(s), want)
	}
	for _, in := range []string{s, "  " + s + "\n"} {
		got, err := ParseToken(in)
		if err != nil {
			t.Fatalf("ParseToken(%q): %v", in, err)
		}
		if got != tok {
			t.Errorf("ParseToken(%q) = %+v, want %+v", in, got, tok)
		}
	}
	other, err := GenerateToken(digest)
	if err != nil {
		t.Fatalf("GenerateToken: %v", err)
	}
	if other.ID == tok.ID || other.Secret == tok.Secret {
		t.Errorf("two generated tokens share an id or secret: %v and %v", tok, other)
	}
}

func TestCADigest(t *testing.T) {
	a, b := CADigest([]byte("one")), CADigest([]byte("two"))
	if a == b {
		t.Errorf("different certificates have the same digest %s", a)
	}
	if a != CADigest([]byte("one")) {
		t.Errorf("CADigest is not deterministic")
	}
	if len(a) != digestLen || !isBase36(a) {
		t.Errorf("CADigest = %q, want %d base36 characters", a, digestLen)
	}
	// A digest with leading zero digits must keep its width.
	if got := base36([]byte{0, 0, 1}, 5); got != "00001" {
		t.Errorf("base36 padding = %q, want 00001", got)
	}
}

func TestParseTokenMalformed(t *testing.T) {
	digest := CADigest([]byte("ca"))
	const secret = "s3cr3ts3cr3ts3cr3ts3cr3ts" // 25 base36 characters
	const id = "abcd0123"
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "the token is empty"},
		{"blank", "  \n", "the token is empty"},
		{"not a token", "hello", "does not start with BERTH-"},
		{"other product", "SWMTKN-1-" + digest + "-" + secret, "does not start with BERTH-"},
		{"lowercase prefix", "berth-1-" + digest + "-" + id + "-" + secret, "does not start with BERTH-"},
		{"future version", "BERTH-2-" + digest + "-" + id + "-" + secret, `version "2" is not supported`},
		{"missing secret", "BERTH-1-" + digest + "-" + id, "4 dash-separated parts instead of 5"},
		{"extra part", "BERTH-1-" + digest + "-" + id + "-" + secret + "-x", "6 dash-separated parts"},
		{"short digest", "BERTH-1-" + digest[:49] + "-" + id + "-" + secret, "CA digest must be 50 characters"},
		{"uppercase digest", "BERTH-1-" + strings.ToUpper(digest) + "-" + id + "-" + secret, "CA digest must be 50 characters"},
		{"long id", "BERTH-1-" + digest + "-" + id + "0-" + secret, "id must be 8 characters"},
		{"short secret", "BERTH-1-" + digest + "-" + id + "-" + secret[:24], "secret must be 25 characters"},
		{"bad secret characters", "BERTH-1-" + digest + "-" + id + "-" + secret[:24] + "_", "secret must be 25 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseToken(tt.in)
			if err == nil {
				t.Fatalf("ParseToken(%q) succeeded, want an error", tt.in)
			}
			if !errors.Is(err, ErrTokenMalformed) {
				t.Errorf("error %v does not wrap ErrTokenMalformed", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not mention %q", msg, tt.want)
			}
			if !strings.Contains(msg, "expected BERTH-1-<ca digest>-<id>-<secret>") {
				t.Errorf("error %q does not show the expected format", msg)
			}
			if strings.Contains(msg, secret[:10]) {
				t.Errorf("error %q repeats the secret", msg)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"short", `"short"`},
		{"BERTH-1-abcdefgh", `"BERTH-1-…" (16 characters)`},
	}
	for _, tt := range tests {
		if got := redact(tt.in); got != tt.want {
			t.Errorf("redact(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
