package image

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/imageref"
	"github.com/berthproject/berth/internal/imagesig"
)

// ErrUntrusted marks a task whose image failed its trust policy's
// verification: the task is rejected, not retried here.
var ErrUntrusted = errors.New("untrusted image")

// Trust verifies a task's image against the trust policy that its
// assignment carried, before the task's container is made: a policy set
// after the apply, or a signature removed since, stops the task here.
// Successful verifications are cached per repository, digest and key set.
type Trust struct {
	cache *imagesig.Cache
	// source returns how to reach an image's registry (the puller's
	// sources); nil reaches it anonymously.
	source func(image string) *berthv1.ImageSource

	mu       sync.Mutex
	policies map[trustKey]*berthv1.ImageTrust
}

type trustKey struct{ namespace, image string }

// verifyTimeout bounds one verification: a registry that does not answer
// rejects the task (to be placed again) rather than holding it.
const verifyTimeout = 30 * time.Second

// NewTrust returns a Trust that finds registry credentials with source
// and keeps verifications in cache (nil: a new one).
func NewTrust(cache *imagesig.Cache, source func(image string) *berthv1.ImageSource) *Trust {
	if cache == nil {
		cache = imagesig.NewCache(imagesig.WithRole("node"))
	}
	return &Trust{cache: cache, source: source, policies: map[trustKey]*berthv1.ImageTrust{}}
}

// Collector counts the node's verifications (berth_image_verifications_total).
func (t *Trust) Collector() prometheus.Collector { return t.cache.Collector() }

// Set records the policies of an assignment: for each (namespace, image)
// of its tasks, the one it carries, or none.
func (t *Trust) Set(as *berthv1.Assignments) {
	given := map[trustKey]*berthv1.ImageTrust{}
	for _, it := range as.GetImageTrust() {
		given[trustKey{it.GetNamespace(), it.GetImage()}] = it
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, task := range as.GetTasks() {
		k := trustKey{task.GetNamespace(), task.GetSpec().GetImage()}
		if it, ok := given[k]; ok {
			t.policies[k] = it
		} else {
			delete(t.policies, k)
		}
	}
}

// Verify returns nil when no policy covers task's image, or when its
// registry holds a signature of the task's digest valid by one of the
// policy's keys; else an error wrapping ErrUntrusted in the words the
// control plane uses.
func (t *Trust) Verify(ctx context.Context, task *berthv1.Task) error {
	spec := task.GetSpec()
	t.mu.Lock()
	it := t.policies[trustKey{task.GetNamespace(), spec.GetImage()}]
	t.mu.Unlock()
	if it == nil {
		return nil
	}
	refuse := func(why error) error {
		return fmt.Errorf("%w: service %s: %s", ErrUntrusted, task.GetService(), imagesig.Refusal(spec.GetImage(), spec.GetImageDigest(), it.GetPolicy(), why))
	}
	if spec.GetImageDigest() == "" {
		return refuse(errors.New("its digest is unknown, so no signature can be checked"))
	}
	ref, err := imageref.Parse(spec.GetImage())
	if err != nil {
		return refuse(err)
	}
	var reg imagesig.Registry
	if t.source != nil {
		if src := t.source(spec.GetImage()); src != nil {
			reg = imagesig.Registry{Username: src.GetUsername(), Password: src.GetSecret(), Insecure: src.GetInsecure()}
		}
	}
	keys := make([]imagesig.Key, len(it.GetKeys()))
	for i, k := range it.GetKeys() {
		keys[i] = imagesig.Key{Name: k.GetName(), PEM: k.GetPublicKeyPem()}
	}
	ctx, cancel := context.WithTimeout(ctx, verifyTimeout)
	defer cancel()
	if _, _, err := t.cache.Verify(ctx, ref.Repository(), spec.GetImageDigest(), keys, reg); err != nil {
		return refuse(err)
	}
	return nil
}
