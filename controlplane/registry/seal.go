package registry

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// sealVersion is the first byte of a sealed secret, so that a later
// format can be told apart from this one.
const sealVersion = 1

// ErrUnseal means a sealed secret could not be opened: it was sealed
// under another cluster's key, for another registry, or damaged.
var ErrUnseal = errors.New("cannot unseal the registry secret")

// Seal encrypts secret with AES-256-GCM under key. The registry's name is
// authenticated with it, so a sealed secret copied to another registry's
// record does not open.
func Seal(key []byte, registry, secret string) ([]byte, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(secret)+aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("sealing the secret of %s: %w", registry, err)
	}
	return aead.Seal(out, out[1:], []byte(secret), []byte(registry)), nil
}

// Unseal opens what Seal made for registry under key.
func Unseal(key []byte, registry string, sealed []byte) (string, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	if len(sealed) < 1+aead.NonceSize()+aead.Overhead() || sealed[0] != sealVersion {
		return "", fmt.Errorf("%w of %s: unknown format", ErrUnseal, registry)
	}
	nonce, box := sealed[1:1+aead.NonceSize()], sealed[1+aead.NonceSize():]
	plain, err := aead.Open(nil, nonce, box, []byte(registry))
	if err != nil {
		return "", fmt.Errorf("%w of %s (sealed under another cluster's key? log in again): %w", ErrUnseal, registry, err)
	}
	return string(plain), nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("registry credential key is %d bytes, want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("registry credential key: %w", err)
	}
	return cipher.NewGCM(block)
}
