package session

import (
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The waits between sessions the control plane refused for this agent's
// version: such a refusal lasts until someone upgrades the agent or the
// servers, so the agent asks again slowly, not in a loop.
const (
	minSkewWait = time.Second
	maxSkewWait = 30 * time.Second
)

// versionRefused reports whether the control plane refused the session
// because this agent's version is too far from the server's (the
// dispatcher answers FailedPrecondition for that alone).
func versionRefused(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.FailedPrecondition
}

// nextSkewWait doubles the wait after a refusal for the version, from
// minSkewWait up to maxSkewWait.
func nextSkewWait(last time.Duration) time.Duration {
	return min(max(last*2, minSkewWait), maxSkewWait)
}
