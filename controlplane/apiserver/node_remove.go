package apiserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// RemoveNode forgets a node: its record, the claims on its name and
// subnet go, and its certificate goes on the deny-list, in one
// transaction. The name is then free for another agent to join with, and
// the old agent is refused. A connected node is removed only with force;
// the dispatcher then ends its session. The orchestrator replaces the
// node's tasks elsewhere, as for a node that is down; volumes whose data is
// on the node stay, and the tasks that mount them wait for it.
func (s *Server) RemoveNode(ctx context.Context, req *berthv1.RemoveNodeRequest) (*berthv1.RemoveNodeResponse, error) {
	if req.Node == "" {
		return nil, status.Error(codes.InvalidArgument, "name the node to remove: berth node rm NAME")
	}
	for attempt := 0; ; attempt++ {
		n, ok := s.findNode(req.Node)
		if !ok {
			return nil, status.Errorf(codes.NotFound, "node %q not found; `berth node ls` lists the nodes", req.Node)
		}
		id := n.GetMeta().GetId()
		if n.Status == berthv1.NodeStatus_NODE_STATUS_READY && !req.Force {
			return nil, status.Errorf(codes.FailedPrecondition,
				"node %s is connected (ready since %s): stop its agent first, or add --force to remove it now and end its session",
				n.Name, n.GetStatusSince().AsTime().UTC().Format(time.RFC3339))
		}
		txn, err := s.removeNodeTxn(ctx, n)
		if err != nil {
			return nil, err
		}
		rev, retry, err := s.commit(ctx, txn, attempt)
		if retry {
			continue
		}
		if err != nil {
			return nil, err
		}
		resp := &berthv1.RemoveNodeResponse{Node: n, Tasks: liveTasks(s.cfg.Cache.NodeTasks(id)), PinnedVolumes: s.pinnedVolumes(id)}
		msg := removalMessage(n, resp)
		s.log.Info("node removed", "node", n.Name, "id", id, "certificate", n.CertificateSerial, "forced", req.Force && n.Status == berthv1.NodeStatus_NODE_STATUS_READY)
		s.cfg.Store.RecordEvent(&berthv1.Event{
			Kind: store.EventKindNode, ObjectId: id, Action: "remove", Message: msg,
			Attributes: map[string]string{store.AttrNode: id, store.AttrNodeName: n.Name},
		})
		return resp, storeError(s.cfg.Cache.WaitRevision(ctx, rev))
	}
}

// removeNodeTxn is the removal of n: its record, guarded by the version
// read (a node that connects meanwhile is looked at again), the claims on
// its name (when n holds it) and subnet, and the deny-list entry of its
// certificate.
func (s *Server) removeNodeTxn(ctx context.Context, n *berthv1.Node) (*store.Txn, error) {
	id := n.GetMeta().GetId()
	var txn store.Txn
	txn.Delete(store.NodeKey(id), n.GetMeta().GetVersion())
	// Nodes that joined before names were claimed hold no claim.
	holder, err := s.cfg.Store.ClaimHolder(ctx, store.NodeNameKey(n.Name))
	switch {
	case err == nil && holder == id:
		txn.Delete(store.NodeNameKey(n.Name), 0)
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return nil, storeError(err)
	}
	if n.Subnet != "" {
		txn.Delete(store.SubnetKey(n.Subnet), 0)
	}
	if serial := n.CertificateSerial; serial != "" {
		txn.Put(store.RevokedKey(serial), &berthv1.RevokedCertificate{
			Serial: serial, Subject: "node/" + id, RevokedAt: timestamppb.Now(), ExpiresAt: n.CertificateExpiresAt,
		})
	}
	return &txn, nil
}

// liveTasks counts the tasks of ts that a node holds and runs or will.
func liveTasks(ts []*berthv1.Task) uint32 {
	var n uint32
	for _, t := range ts {
		if taskstate.Live(t) && t.GetStatus().GetState() >= berthv1.TaskState_TASK_STATE_ASSIGNED {
			n++
		}
	}
	return n
}

// pinnedVolumes are the volumes ("namespace/name") whose data is on node
// id.
func (s *Server) pinnedVolumes(id string) []string {
	var out []string
	for _, v := range s.cfg.Cache.Volumes(store.VolumesPrefix) {
		if v.GetNodeId() == id {
			out = append(out, v.GetNamespace()+"/"+v.GetName())
		}
	}
	return out
}

// removalMessage says what removing n did and left, for the event and
// the CLI.
func removalMessage(n *berthv1.Node, resp *berthv1.RemoveNodeResponse) string {
	var b strings.Builder
	fmt.Fprintf(&b, "node %s (%s) removed; its name is free", n.Name, n.GetMeta().GetId())
	if n.CertificateSerial != "" {
		fmt.Fprintf(&b, " and its certificate %s is revoked", n.CertificateSerial)
	}
	if resp.Tasks > 0 {
		fmt.Fprintf(&b, "; its %d tasks are replaced on other nodes", resp.Tasks)
	}
	if len(resp.PinnedVolumes) > 0 {
		fmt.Fprintf(&b, "; volumes %s stay: their data is on that machine, and the tasks that mount them wait (berth volume rm --force gives the data up)",
			strings.Join(resp.PinnedVolumes, ", "))
	}
	return b.String()
}
