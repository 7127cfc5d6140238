// Package seal keeps the cluster's secrets unreadable at rest. Every
// secret value Berth stores in etcd (the CA's private key, registry
// passwords, the data of secrets) is sealed with the key-encryption key
// (KEK), which is never stored in etcd: the servers hold it in a file
// beside their data, or are given it when they start (--unlock-key). A
// copy of etcd alone reveals none of them.
//
// Sealing is AES-256-GCM. The additional data binds each sealed value to
// its record (a kind and a name), so a value copied into another record
// does not open. Digest tells versions of a secret apart without
// revealing them: an HMAC-SHA256 under a key derived from the KEK.
package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// KeySize is the size of a key-encryption key: 32 bytes (AES-256).
const KeySize = 32

// Kinds of records whose values are sealed; the kind is part of what a
// sealed value is bound to.
const (
	// KindKeyCheck is the probe that tells whether a KEK is the cluster's.
	KindKeyCheck = "key-check"
	// KindCAKey is the cluster CA's private key; its name is the cluster id.
	KindCAKey = "ca-key"
	// KindRegistry is a registry password; its name is the registry.
	KindRegistry = "registry"
	// KindSecret is a secret's data; its name is SecretName.
	KindSecret = "secret"
	// KindSigningKey is the private half of an image signing key; its name
	// is SecretName(namespace, key name).
	KindSigningKey = "signing-key"
)

// SecretName is the name a secret's data is sealed under.
func SecretName(namespace, name string) string { return namespace + "/" + name }

// format is the first byte of a sealed value, so that a later format can
// be told apart from this one.
const format = 1

// ErrOpen means a sealed value did not open: it was sealed under another
// key (another cluster's, or a replaced one), for another record, or it
// was altered.
var ErrOpen = errors.New("cannot open the sealed value")

// DigestPrefix starts every digest Digest makes.
const DigestPrefix = "hmac-sha256:"

// Key is an opened key-encryption key. It is safe for concurrent use.
type Key struct {
	aead cipher.AEAD
	mac  []byte
	// raw is the key itself, for Raw.
	raw []byte
}

// New opens raw, a key-encryption key of KeySize bytes. The sealing and
// digest keys are derived from it, each for its one use.
func New(raw []byte) (*Key, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("key-encryption key is %d bytes, want %d", len(raw), KeySize)
	}
	sealKey, err := hkdf.Key(sha256.New, raw, nil, "berth seal key v1", 32)
	if err != nil {
		return nil, fmt.Errorf("deriving the sealing key: %w", err)
	}
	macKey, err := hkdf.Key(sha256.New, raw, nil, "berth digest key v1", 32)
	if err != nil {
		return nil, fmt.Errorf("deriving the digest key: %w", err)
	}
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, fmt.Errorf("sealing key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("sealing key: %w", err)
	}
	return &Key{aead: aead, mac: macKey, raw: bytes.Clone(raw)}, nil
}

// Raw returns a copy of the key-encryption key itself. Its one use is a
// backup: a cluster snapshot carries it sealed with the operator's
// passphrase, so that a restored cluster opens its secrets.
func (k *Key) Raw() []byte { return bytes.Clone(k.raw) }

// Generate returns a new random key-encryption key.
func Generate() ([]byte, error) {
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generating a key-encryption key: %w", err)
	}
	return raw, nil
}

// record is the additional data that binds a sealed value to its record.
func record(kind, name string) []byte {
	return []byte("berth\x00" + kind + "\x00" + name)
}

// Seal encrypts plain for the record of kind and name.
func (k *Key) Seal(kind, name string, plain []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	out := make([]byte, 1+n, 1+n+len(plain)+k.aead.Overhead())
	out[0] = format
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("sealing %s %s: %w", kind, name, err)
	}
	return k.aead.Seal(out, out[1:], plain, record(kind, name)), nil
}

// Open decrypts what Seal made for the record of kind and name. Its
// errors wrap ErrOpen and never carry the data.
func (k *Key) Open(kind, name string, sealed []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < 1+n+k.aead.Overhead() || sealed[0] != format {
		return nil, fmt.Errorf("%w of %s %s: unknown format", ErrOpen, kind, name)
	}
	plain, err := k.aead.Open(nil, sealed[1:1+n], sealed[1+n:], record(kind, name))
	if err != nil {
		return nil, fmt.Errorf("%w of %s %s: sealed under another key-encryption key, for another record, or altered", ErrOpen, kind, name)
	}
	return plain, nil
}

// Digest is "hmac-sha256:<hex>" of data under the digest key: equal data
// gives equal digests under one cluster's key, and nobody without the key
// can test a guess of the data against it.
func (k *Key) Digest(data []byte) string {
	m := hmac.New(sha256.New, k.mac)
	m.Write(data)
	return DigestPrefix + hex.EncodeToString(m.Sum(nil))
}
