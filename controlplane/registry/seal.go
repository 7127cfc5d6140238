package registry

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"

	"github.com/berthproject/berth/controlplane/seal"
)

// ErrUnseal means a sealed secret could not be opened: it was sealed
// under another cluster's key, for another registry, or damaged.
var ErrUnseal = errors.New("cannot unseal the registry secret")

// Seal seals a registry's secret with the key-encryption key, bound to
// the registry's name: a sealed secret copied to another registry's
// record does not open.
func Seal(kek *seal.Key, registry, secret string) ([]byte, error) {
	return kek.Seal(seal.KindRegistry, registry, []byte(secret))
}

// Unseal opens what Seal made for registry.
func Unseal(kek *seal.Key, registry string, sealed []byte) (string, error) {
	plain, err := kek.Open(seal.KindRegistry, registry, sealed)
	if err != nil {
		return "", fmt.Errorf("%w of %s (sealed under another cluster's key? log in again): %w", ErrUnseal, registry, err)
	}
	return string(plain), nil
}

// legacyFormat is the first byte of a secret sealed by servers from
// before the key-encryption key, under a key derived from the CA's key.
const legacyFormat = 1

// Reseal opens a secret that a server from before the key-encryption key
// sealed under legacyKey (ca.LegacyCredentialKey) and seals it with kek.
// It is for the one-time migration of a cluster's credentials.
func Reseal(legacyKey []byte, kek *seal.Key, registry string, sealed []byte) ([]byte, error) {
	if len(legacyKey) != 32 {
		return nil, fmt.Errorf("legacy registry credential key is %d bytes, want 32", len(legacyKey))
	}
	block, err := aes.NewCipher(legacyKey)
	if err != nil {
		return nil, fmt.Errorf("legacy registry credential key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	n := aead.NonceSize()
	if len(sealed) < 1+n+aead.Overhead() || sealed[0] != legacyFormat {
		return nil, fmt.Errorf("%w of %s: not in the format of servers before the key-encryption key", ErrUnseal, registry)
	}
	plain, err := aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(registry))
	if err != nil {
		return nil, fmt.Errorf("%w of %s under the CA-derived key: %w", ErrUnseal, registry, err)
	}
	return Seal(kek, registry, string(plain))
}
