package apiserver

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseAPIToken checks that any bearer string either parses into an
// id and a secret that make it up again, with an id fit for a store key,
// or is refused with ErrAPITokenInvalid, never repeating the secret.
func FuzzParseAPIToken(f *testing.F) {
	for _, seed := range []string{
		"berth_" + "abcdefghijklmnopqrstuvwxyz" + "." + strings.Repeat("a", 52),
		"berth_id.secret", "berth_.secret", "berth_id.", "berth_../ca.x", "Bearer berth_a.b",
		"", "berth_", "berth_a.b.c", "BERTH_a.b", "berth_a/b.c", "berth_\x00.\xff",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, bearer string) {
		id, secret, err := parseAPIToken(bearer)
		if err != nil {
			if !errors.Is(err, ErrAPITokenInvalid) {
				t.Fatalf("%q: error %v does not wrap ErrAPITokenInvalid", bearer, err)
			}
			if _, s, ok := strings.Cut(bearer, "."); ok && len(s) > 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("%q: the error repeats the secret: %v", bearer, err)
			}
			return
		}
		if id == "" || secret == "" || strings.ContainsAny(id, "/.") {
			t.Fatalf("%q: parsed id %q secret %q", bearer, id, secret)
		}
		if apiTokenPrefix+id+"."+secret != bearer {
			t.Fatalf("%q: id %q and secret %q do not make it up", bearer, id, secret)
		}
	})
}
