package snapshotfile

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"golang.org/x/crypto/scrypt"
)

// KDFScrypt and CipherAESGCM name how a key is sealed.
const (
	KDFScrypt    = "scrypt"
	CipherAESGCM = "aes-256-gcm"
)

// SealedKey is the cluster's key-encryption key sealed with a passphrase:
// AES-256-GCM under a key scrypt derives from the passphrase and Salt.
// The additional data binds it to the snapshot's cluster and etcd
// checksum, so it does not open in another snapshot's header.
type SealedKey struct {
	KDF    string `json:"kdf"`
	N      int    `json:"n"`
	R      int    `json:"r"`
	P      int    `json:"p"`
	Salt   []byte `json:"salt"`
	Cipher string `json:"cipher"`
	Nonce  []byte `json:"nonce"`
	Sealed []byte `json:"sealed"`
}

// scryptParams are the cost of deriving a key: scrypt's recommended
// interactive parameters (2^15, 8, 1): about 32 MiB and a tenth of a
// second, once per save or restore. Tests lower them.
var scryptParams = struct{ N, R, P int }{N: 1 << 15, R: 8, P: 1}

// maxScryptN bounds the work a header may ask of a reader.
const maxScryptN = 1 << 22

// ErrEmptyPassphrase is the error of an empty passphrase.
var ErrEmptyPassphrase = errors.New("the passphrase is empty")

// SealKey seals kek with passphrase for the snapshot h describes (its
// ClusterID and EtcdSHA256 must be set) and returns what goes in h.Key.
func SealKey(kek, passphrase []byte, h Header) (*SealedKey, error) {
	if len(passphrase) == 0 {
		return nil, ErrEmptyPassphrase
	}
	k := &SealedKey{KDF: KDFScrypt, N: scryptParams.N, R: scryptParams.R, P: scryptParams.P, Cipher: CipherAESGCM, Salt: make([]byte, 16)}
	if _, err := rand.Read(k.Salt); err != nil {
		return nil, err
	}
	aead, err := k.aead(passphrase)
	if err != nil {
		return nil, err
	}
	k.Nonce = make([]byte, aead.NonceSize())
	if _, err := rand.Read(k.Nonce); err != nil {
		return nil, err
	}
	k.Sealed = aead.Seal(nil, k.Nonce, kek, boundTo(h))
	return k, nil
}

// OpenKey returns the key-encryption key h carries, opened with
// passphrase. It fails with ErrNoKey when h carries none, and with an
// error wrapping ErrPassphrase when the passphrase is not the one it was
// sealed with (or the header was altered).
func (h Header) OpenKey(passphrase []byte) ([]byte, error) {
	k := h.Key
	if k == nil {
		return nil, ErrNoKey
	}
	if k.KDF != KDFScrypt || k.Cipher != CipherAESGCM {
		return nil, fmt.Errorf("the snapshot's key is sealed with %s and %s, which this berth does not read", k.KDF, k.Cipher)
	}
	if k.N <= 1 || k.N > maxScryptN || k.R <= 0 || k.P <= 0 || k.R*k.P >= 1<<20 {
		return nil, fmt.Errorf("the snapshot's key asks for scrypt parameters out of range (N=%d r=%d p=%d); the file is damaged", k.N, k.R, k.P)
	}
	aead, err := k.aead(passphrase)
	if err != nil {
		return nil, err
	}
	if len(k.Nonce) != aead.NonceSize() {
		return nil, fmt.Errorf("%w, or the file is damaged (its key's nonce is %d bytes)", ErrPassphrase, len(k.Nonce))
	}
	kek, err := aead.Open(nil, k.Nonce, k.Sealed, boundTo(h))
	if err != nil {
		return nil, fmt.Errorf("%w, or the file's header is damaged: the key-encryption key in it does not open", ErrPassphrase)
	}
	return kek, nil
}

// aead is the cipher of passphrase under k's KDF parameters.
func (k *SealedKey) aead(passphrase []byte) (cipher.AEAD, error) {
	key, err := scrypt.Key(passphrase, k.Salt, k.N, k.R, k.P, 32)
	if err != nil {
		return nil, fmt.Errorf("deriving the key from the passphrase: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// boundTo is the additional data that ties a sealed key to its snapshot.
func boundTo(h Header) []byte {
	return []byte("berth snapshot key v1\x00" + h.ClusterID + "\x00" + h.EtcdSHA256)
}
