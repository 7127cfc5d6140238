package registry

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/berthproject/berth/controlplane/seal"
)

func key(b byte) *seal.Key {
	k, err := seal.New(bytes.Repeat([]byte{b}, seal.KeySize))
	if err != nil {
		panic(err)
	}
	return k
}

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
		key      *seal.Key
		registry string
		sealed   []byte
	}{
		{"wrong key", key(2), "registry.example.com", sealed},
		{"another registry", key(1), "other.example.com", sealed},
		{"damaged", key(1), "registry.example.com", flipped},
		{"truncated", key(1), "registry.example.com", sealed[:10]},
	}
	for _, c := range cases {
		if got, err := Unseal(c.key, c.registry, c.sealed); !errors.Is(err, ErrUnseal) {
			t.Errorf("%s: Unseal = %q, %v; want ErrUnseal", c.name, got, err)
		}
	}
}

// legacySeal seals as servers from before the key-encryption key did.
func legacySeal(t *testing.T, key []byte, registry, secret string) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 1+aead.NonceSize())
	out[0] = 1
	rand.Read(out[1:])
	return aead.Seal(out, out[1:], []byte(secret), []byte(registry))
}

func TestReseal(t *testing.T) {
	legacy := bytes.Repeat([]byte{5}, 32)
	old := legacySeal(t, legacy, "registry.example.com", "s3cret")
	kek := key(1)
	sealed, err := Reseal(legacy, kek, "registry.example.com", old)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Unseal(kek, "registry.example.com", sealed); err != nil || got != "s3cret" {
		t.Fatalf("Unseal of the resealed secret = %q, %v", got, err)
	}
	for _, c := range []struct {
		name     string
		legacy   []byte
		registry string
		sealed   []byte
	}{
		{"wrong legacy key", bytes.Repeat([]byte{6}, 32), "registry.example.com", old},
		{"another registry", legacy, "other.example.com", old},
		{"already resealed", legacy, "registry.example.com", sealed},
		{"short key", []byte("short"), "registry.example.com", old},
	} {
		if _, err := Reseal(c.legacy, kek, c.registry, c.sealed); err == nil {
			t.Errorf("%s: Reseal accepted", c.name)
		}
	}
}
