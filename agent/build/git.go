package build

import (
	"context"
	"fmt"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/gitcontext"
	controlapi "github.com/moby/buildkit/api/services/control"
)

// checkGitContext checks a header whose context is a git URL: a Dockerfile
// sent on its own cannot be used with it (BuildKit reads the Dockerfile
// from the repository), and the URL must be one BuildKit fetches.
func checkGitContext(h *berthv1.BuildHeader) error {
	if err := gitcontext.Check(h.GetGitContext()); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if len(h.GetDockerfileContent()) > 0 {
		return fmt.Errorf("%w: a git build context reads its Dockerfile from the repository: name its path there with -f, or build from a directory to send the Dockerfile", ErrInvalid)
	}
	return nil
}

// buildGit builds h from its git context: the node's BuildKit clones the
// repository itself (with the node's git), so nothing of the context
// passes through Berth.
func (b *Builder) buildGit(ctx context.Context, h *berthv1.BuildHeader, names []string, progress func(*controlapi.StatusResponse) error) (Result, error) {
	c, err := b.connect(ctx)
	if err != nil {
		return Result{}, err
	}
	name := h.GetDockerfile()
	if name == "" {
		name = "Dockerfile"
	}
	attrs := frontendAttrs(h, name)
	// The Dockerfile frontend fetches the context and the Dockerfile
	// from the same git source.
	attrs["context"] = h.GetGitContext()
	return b.solveImage(ctx, c, solveOpt(h, names, attrs), names, progress)
}
