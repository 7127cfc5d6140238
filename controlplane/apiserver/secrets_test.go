package apiserver

import (
	"bytes"
	"testing"

	"github.com/berthproject/berth/controlplane/seal"
)

// testKEK is a key-encryption key for tests.
func testKEK(t testing.TB) *seal.Key {
	t.Helper()
	k, err := seal.New(bytes.Repeat([]byte{3}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}
