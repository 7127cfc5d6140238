package registry

import (
	"bytes"
	"errors"
	"testing"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestSealRoundTrip(t *testing.T) {
	sealed, err := Seal(key(1), "registry.example.com", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("s3cret")) {
		t.Fatalf("the sealed secret contains the plain one")
	}
	got, err := Unseal(key(1), "registry.example.com", sealed)
	if err != nil || got != "s3cret" {
		t.Fatalf("Unseal = %q, %v", got, err)
	}
	again, _ := Seal(key(1), "registry.example.com", "s3cret")
	if bytes.Equal(sealed, again) {
		t.Errorf("two seals of one secret are equal: the nonce is not random")
	}
}

func TestUnsealRefuses(t *testing.T) {
	sealed, err := Seal(key(1), "registry.example.com", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	cases := []struct {
		name     string
		key      []byte
		registry string
		sealed   []byte
	}{
		{"wrong key", key(2), "registry.example.com", sealed},
		{"another registry", key(1), "other.example.com", sealed},
		{"damaged", key(1), "registry.example.com", flipped},
		{"truncated", key(1), "registry.example.com", sealed[:10]},
		{"unknown version", key(1), "registry.example.com", append([]byte{9}, sealed[1:]...)},
	}
	for _, c := range cases {
		if got, err := Unseal(c.key, c.registry, c.sealed); !errors.Is(err, ErrUnseal) {
			t.Errorf("%s: Unseal = %q, %v; want ErrUnseal", c.name, got, err)
		}
	}
	if _, err := Seal([]byte("short"), "r", "s"); err == nil {
		t.Errorf("Seal accepted a 5-byte key")
	}
}
