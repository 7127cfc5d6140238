package trigger

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// SignatureHeader is the header that carries a webhook's signature, in
// GitHub's format (Gitea and Forgejo send it too).
const SignatureHeader = "X-Hub-Signature-256"

// signaturePrefix starts the header's value: sha256=<hex of the HMAC>.
const signaturePrefix = "sha256="

// ErrSignature marks a webhook whose signature is missing or does not
// match its body: it is answered 401 and nothing is built.
var ErrSignature = errors.New("webhook signature")

// Sign is the X-Hub-Signature-256 value of body under secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return signaturePrefix + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks header, an X-Hub-Signature-256 value, against body and
// secret, in constant time. Its errors wrap ErrSignature and say what was
// wrong, never what was expected.
func Verify(secret, body []byte, header string) error {
	if header == "" {
		return fmt.Errorf("%w: no %s header: set the webhook's secret to the one `berth trigger create` printed, with content type application/json", ErrSignature, SignatureHeader)
	}
	hexSum, ok := strings.CutPrefix(header, signaturePrefix)
	if !ok {
		return fmt.Errorf("%w: %s must be sha256=<hex>", ErrSignature, SignatureHeader)
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: %s is not a SHA-256 HMAC in hex", ErrSignature, SignatureHeader)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return fmt.Errorf("%w: %s does not match the body: the webhook's secret is not this trigger's", ErrSignature, SignatureHeader)
	}
	return nil
}

// NewSecret makes a webhook secret: 32 random bytes, in hex (what users
// paste into GitHub's form).
func NewSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("making a webhook secret: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Push is what a push event says that a trigger needs: GitHub's and
// Gitea's (and Forgejo's, Gogs') push payloads carry these fields.
type Push struct {
	// Ref is the pushed ref ("refs/heads/main").
	Ref string `json:"ref"`
	// After is the commit the ref points to now; all zeros when the push
	// deleted the ref.
	After   string `json:"after"`
	Deleted bool   `json:"deleted"`
	Pusher  struct {
		Name     string `json:"name"`
		Username string `json:"username"`
	} `json:"pusher"`
	UserName string `json:"user_name"` // GitLab's
}

// ParsePush reads a push event's JSON body.
func ParsePush(body []byte) (Push, error) {
	var p Push
	if err := json.Unmarshal(body, &p); err != nil {
		return Push{}, fmt.Errorf("the push event is not JSON (set the webhook's content type to application/json): %v", err)
	}
	if p.Ref == "" {
		return Push{}, errors.New("the push event has no ref: send push events")
	}
	return p, nil
}

// Branch is the pushed branch, or "" when the push was of a tag or other
// ref.
func (p Push) Branch() string {
	b, ok := strings.CutPrefix(p.Ref, "refs/heads/")
	if !ok {
		return ""
	}
	return b
}

// Who is who pushed, as the event says.
func (p Push) Who() string {
	for _, s := range []string{p.Pusher.Name, p.Pusher.Username, p.UserName} {
		if s != "" {
			return s
		}
	}
	return ""
}

// Decision is what a trigger does with a push: build Commit, or ignore it
// for Reason.
type Decision struct {
	Build  bool
	Commit string
	Reason string
}

// Decide says whether a push to a trigger that builds branch is built.
// A push of another branch, of a tag, or that deletes the branch is
// ignored, with the reason.
func Decide(p Push, branch string) Decision {
	got := p.Branch()
	switch {
	case got == "":
		return Decision{Reason: fmt.Sprintf("push of %s ignored: the trigger builds branch %s", p.Ref, branch)}
	case got != branch:
		return Decision{Reason: fmt.Sprintf("push to branch %s ignored: the trigger builds branch %s", got, branch)}
	case p.Deleted || strings.Trim(p.After, "0") == "":
		return Decision{Reason: fmt.Sprintf("push deleting branch %s ignored: nothing to build", got)}
	case !isCommitID(p.After):
		return Decision{Reason: fmt.Sprintf("push to branch %s ignored: %q is not a commit id", got, p.After)}
	}
	return Decision{Build: true, Commit: strings.ToLower(p.After)}
}

// isCommitID reports whether s is a full SHA-1 or SHA-256 commit id.
func isCommitID(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
