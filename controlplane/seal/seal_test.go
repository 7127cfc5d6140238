package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mustKey(t *testing.T, fill byte) *Key {
	t.Helper()
	k, err := New(bytes.Repeat([]byte{fill}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k, other := mustKey(t, 1), mustKey(t, 2)
	plain := []byte("hunter2")
	sealed, err := k.Seal(KindSecret, "default/db", plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, plain) {
		t.Fatal("the sealed value holds the plain text")
	}
	got, err := k.Open(KindSecret, "default/db", sealed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v; want %q", got, err, plain)
	}
	again, _ := k.Seal(KindSecret, "default/db", plain)
	if bytes.Equal(again, sealed) {
		t.Error("two seals of one value are equal: the nonce is not random")
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	truncated := sealed[:10]
	badFormat := bytes.Clone(sealed)
	badFormat[0] = 9
	for _, tc := range []struct {
		name       string
		key        *Key
		kind, rec  string
		sealed     []byte
		wantFormat bool
	}{
		{name: "wrong key", key: other, kind: KindSecret, rec: "default/db", sealed: sealed},
		{name: "wrong record name", key: k, kind: KindSecret, rec: "default/web", sealed: sealed},
		{name: "wrong record kind", key: k, kind: KindRegistry, rec: "default/db", sealed: sealed},
		{name: "tampered", key: k, kind: KindSecret, rec: "default/db", sealed: tampered},
		{name: "truncated", key: k, kind: KindSecret, rec: "default/db", sealed: truncated, wantFormat: true},
		{name: "unknown format", key: k, kind: KindSecret, rec: "default/db", sealed: badFormat, wantFormat: true},
		{name: "empty", key: k, kind: KindSecret, rec: "default/db", sealed: nil, wantFormat: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.key.Open(tc.kind, tc.rec, tc.sealed)
			if !errors.Is(err, ErrOpen) {
				t.Fatalf("Open = %q, %v; want ErrOpen", got, err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error reveals the data: %v", err)
			}
			if tc.wantFormat != strings.Contains(err.Error(), "unknown format") {
				t.Errorf("error %q: format problem is %v", err, tc.wantFormat)
			}
		})
	}
}

func TestNewRefusesShortKeys(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33} {
		if _, err := New(make([]byte, n)); err == nil {
			t.Errorf("New accepted a %d-byte key", n)
		}
	}
}

func TestDigest(t *testing.T) {
	k, other := mustKey(t, 1), mustKey(t, 2)
	d := k.Digest([]byte("a"))
	if !strings.HasPrefix(d, DigestPrefix) || len(d) != len(DigestPrefix)+64 {
		t.Fatalf("digest %q is not hmac-sha256:<64 hex>", d)
	}
	if d != k.Digest([]byte("a")) {
		t.Error("digest of equal data differs")
	}
	if d == k.Digest([]byte("b")) {
		t.Error("digest of other data is equal")
	}
	if d == other.Digest([]byte("a")) {
		t.Error("digest under another key is equal: it is not keyed")
	}
}

func TestKeyCheck(t *testing.T) {
	k, other := mustKey(t, 1), mustKey(t, 2)
	kc, err := k.NewKeyCheck()
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Check(kc); err != nil {
		t.Errorf("the key's own check: %v", err)
	}
	if err := other.Check(kc); !errors.Is(err, ErrOpen) {
		t.Errorf("another key's check = %v, want ErrOpen", err)
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", FileName)
	if _, err := ReadFile(path); !IsNotExist(err) {
		t.Fatalf("ReadFile of a missing file = %v, want not-exist", err)
	}
	raw, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteNewFile(path, raw); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v (%v), want 0600", st.Mode(), err)
	}
	if LooseMode(path) {
		t.Error("LooseMode of a 0600 file")
	}
	if err := WriteNewFile(path, raw); err == nil {
		t.Error("WriteNewFile replaced an existing key file")
	}
	got, err := ReadFile(path)
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("ReadFile = %x, %v; want %x", got, err, raw)
	}
	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path); err == nil || !strings.Contains(err.Error(), "5 bytes") {
		t.Errorf("ReadFile of a damaged file = %v", err)
	}
	if !LooseMode(path) {
		t.Error("LooseMode of a 0644 file is false")
	}
}

func TestText(t *testing.T) {
	raw, _ := Generate()
	got, err := ParseText(" " + Text(raw) + "\n")
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("ParseText(Text) = %x, %v", got, err)
	}
	for _, bad := range []string{"", "not base64!", Text([]byte("short"))} {
		if _, err := ParseText(bad); err == nil {
			t.Errorf("ParseText(%q) accepted", bad)
		}
	}
}
