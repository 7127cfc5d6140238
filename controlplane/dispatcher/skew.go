package dispatcher

import (
	"cmp"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/version"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// refuseSkew refuses the session of an agent more than one minor version
// from the server, before it registers: such an agent and server may not
// understand each other's messages. The agent logs the error, which names
// both versions and what to upgrade, and tries again later.
func (d *Dispatcher) refuseSkew(nodeID string, desc *berthv1.NodeDescription) error {
	server := cmp.Or(d.cfg.Version, version.String())
	agent := desc.GetAgentVersion()
	err := version.Skew(version.Side{Role: "agent", Version: agent}, version.Side{Role: "server", Version: server})
	if err == nil {
		return nil
	}
	d.log.Warn("refused the session of an agent of another version", "id", nodeID, "name", desc.GetName(),
		"agent_version", agent, "server_version", server)
	return status.Errorf(codes.FailedPrecondition, "node %s: %v", cmp.Or(desc.GetName(), nodeID), err)
}
