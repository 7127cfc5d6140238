package identity

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseToken parses arbitrary text as a join token: it never panics,
// what it accepts renders back to the same token, and what it refuses is
// refused as malformed without repeating what may be the secret.
func FuzzParseToken(f *testing.F) {
	tok, err := GenerateToken(CADigest([]byte("a CA certificate")))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		tok.String(), " " + tok.String() + "\n", "", "BERTH-", "BERTH-1", "BERTH-2-a-b-c",
		strings.ReplaceAll(tok.String(), "-", ""), "BERTH-1" + strings.ReplaceAll(tok.String()[7:], "-", ""),
		strings.ToUpper(tok.String()), tok.String() + "-", "BERTH-1-é-ü-ß",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseToken(s)
		if err == nil {
			again, err := ParseToken(got.String())
			if err != nil || again != got {
				t.Fatalf("ParseToken(%q) = %+v, whose String does not parse back: %+v, %v", s, got, again, err)
			}
			return
		}
		if !errors.Is(err, ErrTokenMalformed) {
			t.Fatalf("ParseToken(%q) error %v is not ErrTokenMalformed", s, err)
		}
		// Past the eight characters shown, no run of 16 characters that
		// could be a secret appears in the error.
		trimmed := strings.TrimSpace(s)
		start := 0
		for i := 0; i < 8 && start < len(trimmed); i++ {
			_, size := utf8.DecodeRuneInString(trimmed[start:])
			start += size
		}
		for i := start; i+16 <= len(trimmed); i++ {
			if w := trimmed[i : i+16]; isBase36(w) && strings.Contains(err.Error(), w) {
				t.Fatalf("ParseToken(%q) error %q repeats %q of the token", s, err, w)
			}
		}
	})
}
