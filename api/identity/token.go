package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"unicode/utf8"
)

// The parts of a join token; see Token for the format.
const (
	tokenPrefix    = "BERTH"
	tokenVersion   = "1"
	digestLen      = 50 // base36 digits of a 256-bit number
	tokenIDLen     = 8  // base36 digits of a 40-bit number
	tokenSecretLen = 25 // base36 digits of a 128-bit number
	tokenIDBytes   = 5
	// TokenSecretBytes is how many bytes of entropy a token secret holds.
	TokenSecretBytes = 16
	tokenFormat      = "BERTH-1-<ca digest>-<id>-<secret>"
)

// ErrTokenMalformed is returned (wrapped) by ParseToken for strings that are
// not join tokens.
var ErrTokenMalformed = errors.New("join token is malformed")

// Token is a parsed join token. Its text form is
//
//	BERTH-1-<ca digest>-<id>-<secret>
//
// where "BERTH" and "1" are the prefix and format version, and:
//   - ca digest is CADigest of the cluster CA certificate: its SHA-256 in
//     lowercase base36, zero-padded to 50 characters. It lets a joining agent
//     check that it reached the right cluster before it sends anything secret.
//   - id is 8 lowercase base36 characters (40 random bits) naming the token
//     on the servers, so that it can be revoked.
//   - secret is 25 lowercase base36 characters (128 bits).
//
// Only 0-9, a-z and '-' appear, so a token survives shells, YAML and chat
// without quoting.
type Token struct {
	// CADigest is CADigest of the cluster CA certificate.
	CADigest string
	// ID names the token on the servers.
	ID string
	// Secret proves the token holder may join.
	Secret string
}

// GenerateToken makes a token with a random id and secret for the cluster
// whose CA has the given digest.
func GenerateToken(caDigest string) (Token, error) {
	id, err := randomBase36(tokenIDBytes, tokenIDLen)
	if err != nil {
		return Token{}, fmt.Errorf("generate join token id: %w", err)
	}
	secret, err := randomBase36(TokenSecretBytes, tokenSecretLen)
	if err != nil {
		return Token{}, fmt.Errorf("generate join token secret: %w", err)
	}
	return Token{CADigest: caDigest, ID: id, Secret: secret}, nil
}

// TokenSecret encodes b (TokenSecretBytes long) as a token secret. Servers
// use it to derive secrets instead of drawing them at random.
func TokenSecret(b []byte) string { return base36(b, tokenSecretLen) }

// String renders the token in its documented format.
func (t Token) String() string {
	return tokenPrefix + "-" + tokenVersion + "-" + t.CADigest + "-" + t.ID + "-" + t.Secret
}

// ParseToken reads a join token. Surrounding white space is ignored, since
// tokens are pasted. Errors never repeat the secret.
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	malformed := func(reason string) error {
		return fmt.Errorf("%w: expected %s, got %s: %s; copy the whole token printed by `berth join-token`",
			ErrTokenMalformed, tokenFormat, redact(s), reason)
	}
	if s == "" {
		return Token{}, malformed("the token is empty")
	}
	parts := strings.Split(s, "-")
	if parts[0] != tokenPrefix {
		return Token{}, malformed("it does not start with BERTH-")
	}
	if len(parts) > 1 && parts[1] != tokenVersion {
		// A token pasted without its dashes is all version: only a
		// short one is shown, lest the error repeat the secret.
		if len(parts[1]) > 3 {
			return Token{}, malformed(fmt.Sprintf("the part after BERTH- must be the version, %s, followed by a dash", tokenVersion))
		}
		return Token{}, malformed(fmt.Sprintf("version %q is not supported by this Berth (it reads version %s)", parts[1], tokenVersion))
	}
	if len(parts) != 5 {
		return Token{}, malformed(fmt.Sprintf("it has %d dash-separated parts instead of 5", len(parts)))
	}
	fields := []struct {
		name, value string
		length      int
	}{
		{"CA digest", parts[2], digestLen},
		{"id", parts[3], tokenIDLen},
		{"secret", parts[4], tokenSecretLen},
	}
	for _, f := range fields {
		if len(f.value) != f.length || !isBase36(f.value) {
			return Token{}, malformed(fmt.Sprintf("the %s must be %d characters of 0-9 and a-z", f.name, f.length))
		}
	}
	return Token{CADigest: parts[2], ID: parts[3], Secret: parts[4]}, nil
}

// CADigest is the SHA-256 of a CA certificate (DER), in the base36 form that
// join tokens carry.
func CADigest(caCertDER []byte) string {
	sum := sha256.Sum256(caCertDER)
	return base36(sum[:], digestLen)
}

// redact shows enough of a malformed token to recognise it (its first eight
// characters, which for a real token are "BERTH-1-") without repeating a
// secret that may follow.
func redact(s string) string {
	const shown = 8
	if s == "" {
		return `""`
	}
	n := utf8.RuneCountInString(s)
	if n <= shown {
		return fmt.Sprintf("%q", s)
	}
	r := []rune(s)
	return fmt.Sprintf("%q (%d characters)", string(r[:shown])+"…", n)
}

func randomBase36(nbytes, width int) (string, error) {
	b := make([]byte, nbytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base36(b, width), nil
}

// base36 encodes b as a big-endian number in lowercase base36, left-padded
// with zeros to width so that every token has the same shape.
func base36(b []byte, width int) string {
	s := new(big.Int).SetBytes(b).Text(36)
	if len(s) < width {
		s = strings.Repeat("0", width-len(s)) + s
	}
	return s
}

func isBase36(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}
