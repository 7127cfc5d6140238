package apiserver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/taskstate"
	"github.com/berthproject/berth/api/volume"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/scheduler"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// volumeNodeTimeout bounds each call to a volume's node, so that one node
// that does not answer does not hold up a listing.
const volumeNodeTimeout = 5 * time.Second

// eventKindVolume is the kind of events about volumes.
const eventKindVolume = "volume"

// ListVolumes lists the named volumes of a namespace (every namespace the
// caller may see with all_namespaces), or of one app, with their nodes' word on their size.
func (s *Server) ListVolumes(ctx context.Context, req *berthv1.ListVolumesRequest) (*berthv1.ListVolumesResponse, error) {
	sc := listScope(ctx, req.Namespace, req.AllNamespaces)
	prefix := sc.prefix(store.VolumesPrefix)
	var vols []*berthv1.Volume
	for _, v := range s.cfg.Cache.Volumes(prefix) {
		if !sc.has(v.GetNamespace()) {
			continue
		}
		if req.App == "" || v.GetApp() == req.App || (v.GetApp() == "" && s.volumeUsedByApp(v, req.App)) {
			vols = append(vols, v)
		}
	}
	return &berthv1.ListVolumesResponse{Volumes: s.summarizeVolumes(ctx, vols)}, nil
}

// volumeUsedByApp reports whether an external volume's last task is one
// of app, so that listing an app shows the shared volumes it uses.
func (s *Server) volumeUsedByApp(v *berthv1.Volume, app string) bool {
	t, ok := s.cfg.Cache.Task(v.GetTaskId())
	return ok && t.GetApp() == app
}

// GetVolume returns one volume with its node's word on its size.
func (s *Server) GetVolume(ctx context.Context, req *berthv1.GetVolumeRequest) (*berthv1.VolumeSummary, error) {
	ns := namespaceOf(req.Namespace)
	v, ok := s.cfg.Cache.Volume(ns, req.Name)
	if !ok {
		return nil, volumeNotFound(ns, req.Name)
	}
	return s.summarizeVolumes(ctx, []*berthv1.Volume{v})[0], nil
}

// RemoveVolume deletes a volume's data on its node, then its record. It is
// refused while a task meant to run uses the volume. When the node cannot
// be reached, only force goes on: the record goes, the data stays on the
// node, and the volume's slot starts anew on any node.
func (s *Server) RemoveVolume(ctx context.Context, req *berthv1.RemoveVolumeRequest) (*berthv1.RemoveVolumeResponse, error) {
	ns := namespaceOf(req.Namespace)
	v, ok := s.cfg.Cache.Volume(ns, req.Name)
	if !ok {
		return nil, volumeNotFound(ns, req.Name)
	}
	if err := s.removeVolume(ctx, v, req.Force); err != nil {
		return nil, err
	}
	return &berthv1.RemoveVolumeResponse{}, nil
}

// removeVolume removes v's data and record (see RemoveVolume). It returns
// a gRPC status that names the volume.
func (s *Server) removeVolume(ctx context.Context, v *berthv1.Volume, force bool) error {
	ns, name := v.GetNamespace(), v.GetName()
	if t := s.volumeUser(v); t != nil {
		return status.Errorf(codes.FailedPrecondition, "volume %s is used by task %s (%s) of service %s/%s, which is meant to run; scale the service down (berth scale %s/%s=N) or delete its app first",
			name, store.TaskName(t), t.GetMeta().GetId(), t.GetApp(), t.GetService(), t.GetApp(), t.GetService())
	}
	kept := ""
	if v.GetNodeId() != "" {
		node, err := s.removeVolumeData(ctx, v)
		var unreachable *nodeUnreachableError
		switch {
		case errors.As(err, &unreachable) && force:
			kept = fmt.Sprintf("the data of volume %s stays on node %s, which could not be reached (%v); it is no longer used", name, node, unreachable.err)
		case errors.As(err, &unreachable):
			return status.Errorf(codes.FailedPrecondition, "volume %s: node %s, which holds its data, cannot be reached (%v); try again when it is back, or remove only the record with berth volume rm --force %s (the data stays on %s, and the volume's slot starts anew on any node with an empty volume)",
				name, node, unreachable.err, name, node)
		case err != nil:
			return err
		}
	}
	for attempt := 0; ; attempt++ {
		cur, ok := s.cfg.Cache.Volume(ns, name)
		if !ok {
			break // removed meanwhile
		}
		if t := s.volumeUser(cur); t != nil {
			return status.Errorf(codes.FailedPrecondition, "volume %s was taken by task %s (%s) of service %s/%s while it was being removed; its record is kept",
				name, store.TaskName(t), t.GetMeta().GetId(), t.GetApp(), t.GetService())
		}
		var txn store.Txn
		txn.Delete(store.VolumeKey(ns, name), cur.GetMeta().GetVersion())
		rev, retry, err := s.commit(ctx, &txn, attempt)
		if retry {
			continue
		}
		if err != nil {
			return err
		}
		if err := s.cfg.Cache.WaitRevision(ctx, rev); err != nil {
			return storeError(err)
		}
		break
	}
	msg := "removed"
	if kept != "" {
		msg = "record removed; " + kept
		warn(ctx, kept)
	}
	s.log.Info("volume removed", "namespace", ns, "volume", name, "node", v.GetNodeId(), "data_kept", kept != "")
	s.cfg.Store.RecordEvent(&berthv1.Event{
		Kind: eventKindVolume, ObjectId: ns + "/" + name, Action: "remove", Message: msg,
		Attributes: map[string]string{store.AttrNamespace: ns, store.AttrApp: v.GetApp()},
	})
	return nil
}

// nodeUnreachableError is a node that could not be asked: not in the
// cluster, not ready, or not answering.
type nodeUnreachableError struct{ err error }

func (e *nodeUnreachableError) Error() string { return e.err.Error() }

// removeVolumeData asks v's node to delete its data. It returns the
// node's name for messages, and a *nodeUnreachableError when the node
// could not be asked; a refusal of the node comes as a gRPC status.
func (s *Server) removeVolumeData(ctx context.Context, v *berthv1.Volume) (string, error) {
	n, name, err := s.volumeNode(v.GetNodeId())
	if err != nil {
		return name, &nodeUnreachableError{err}
	}
	cli, err := s.cfg.Nodes.Client(n)
	if err != nil {
		return name, &nodeUnreachableError{err}
	}
	cctx, cancel := context.WithTimeout(ctx, volumeNodeTimeout)
	defer cancel()
	_, err = cli.RemoveVolume(cctx, &berthv1.NodeRemoveVolumeRequest{Namespace: v.GetNamespace(), Name: v.GetName()})
	switch code := status.Code(err); {
	case err == nil, code == codes.NotFound:
		return name, nil
	case ctx.Err() != nil:
		return name, status.FromContextError(ctx.Err()).Err()
	case code == codes.Unavailable, code == codes.DeadlineExceeded, code == codes.Unimplemented:
		return name, &nodeUnreachableError{errors.New(status.Convert(err).Message())}
	case code == codes.FailedPrecondition:
		return name, &volumeBusyError{status.Errorf(code, "volume %s: node %s did not remove its data: %s", v.GetName(), name, status.Convert(err).Message())}
	default:
		return name, status.Errorf(code, "volume %s: node %s did not remove its data: %s", v.GetName(), name, status.Convert(err).Message())
	}
}

// volumeBusyError is a node's refusal to remove a volume that one of its
// containers still uses (a container whose task is stopping, say).
type volumeBusyError struct{ err error }

func (e *volumeBusyError) Error() string { return e.err.Error() }

// GRPCStatus lets the refusal reach the client with its code.
func (e *volumeBusyError) GRPCStatus() *status.Status { return status.Convert(e.err) }

// volumeNode returns the node with id when it is ready to be asked, and
// its name (the ID when unknown) for messages.
func (s *Server) volumeNode(id string) (*berthv1.Node, string, error) {
	n, ok := s.cfg.Cache.Node(id)
	if !ok {
		return nil, id, fmt.Errorf("node %s is not in the cluster", id)
	}
	name := n.GetName()
	if name == "" {
		name = id
	}
	if n.GetStatus() != berthv1.NodeStatus_NODE_STATUS_READY {
		return nil, name, fmt.Errorf("node %s is %s", name, nodeStatusWord(n.GetStatus()))
	}
	return n, name, nil
}

// volumeUser returns the task meant to run that uses v on its node, or
// nil. A task still waiting for a node does not count: removing the
// volume is how an operator lets it start elsewhere.
func (s *Server) volumeUser(v *berthv1.Volume) *berthv1.Task {
	return s.volumeUsers(v.GetNamespace())[v.GetName()]
}

// volumeUsers maps each volume of namespace to the task meant to run that
// is placed with it.
func (s *Server) volumeUsers(namespace string) map[string]*berthv1.Task {
	users := map[string]*berthv1.Task{}
	names := map[string]string{}
	for _, t := range s.cfg.Cache.Tasks() {
		if t.GetNamespace() != namespace || !taskstate.Active(t) || t.GetNodeId() == "" ||
			t.GetStatus().GetState() < berthv1.TaskState_TASK_STATE_ASSIGNED || !volume.HasNamed(t.GetSpec()) {
			continue
		}
		nodeName, ok := names[t.GetNodeId()]
		if !ok {
			if n, found := s.cfg.Cache.Node(t.GetNodeId()); found {
				nodeName = n.GetName()
			}
			names[t.GetNodeId()] = nodeName
		}
		for _, tv := range scheduler.TaskVolumes(t.GetSpec(), t.GetSlot(), nodeName) {
			if cur := users[tv.Name]; cur == nil || t.GetMeta().GetCreatedAt().AsTime().After(cur.GetMeta().GetCreatedAt().AsTime()) {
				users[tv.Name] = t
			}
		}
	}
	return users
}

// summarizeVolumes asks each node that holds some of vols for their size,
// all nodes at once, and says which task uses each.
func (s *Server) summarizeVolumes(ctx context.Context, vols []*berthv1.Volume) []*berthv1.VolumeSummary {
	out := make([]*berthv1.VolumeSummary, len(vols))
	byNode := map[string][]int{}
	users := map[string]map[string]*berthv1.Task{}
	for i, v := range vols {
		out[i] = &berthv1.VolumeSummary{Volume: v, NodeName: v.GetNodeId()}
		if n, ok := s.cfg.Cache.Node(v.GetNodeId()); ok && n.GetName() != "" {
			out[i].NodeName = n.GetName()
		}
		ns := v.GetNamespace()
		if users[ns] == nil {
			users[ns] = s.volumeUsers(ns)
		}
		if t := users[ns][v.GetName()]; t != nil {
			out[i].Task = t.GetApp() + "/" + store.TaskName(t)
		}
		if v.GetNodeId() == "" {
			out[i].SizeError = "not on a node yet: no task has used it"
			continue
		}
		byNode[v.GetNodeId()] = append(byNode[v.GetNodeId()], i)
	}
	var wg sync.WaitGroup
	for id, idx := range byNode {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.volumeSizes(ctx, id, out, idx)
		}()
	}
	wg.Wait()
	return out
}

// volumeSizes fills the size of the volumes out[idx], all on node id,
// from one call to the node; or says why it cannot.
func (s *Server) volumeSizes(ctx context.Context, id string, out []*berthv1.VolumeSummary, idx []int) {
	fail := func(why string) {
		for _, i := range idx {
			out[i].SizeError = why
		}
	}
	n, _, err := s.volumeNode(id)
	if err != nil {
		fail(err.Error())
		return
	}
	cli, err := s.cfg.Nodes.Client(n)
	if err != nil {
		fail(fmt.Sprintf("node %s cannot be reached: %v", n.GetName(), err))
		return
	}
	req := &berthv1.NodeVolumeUsageRequest{}
	for _, i := range idx {
		v := out[i].GetVolume()
		req.Volumes = append(req.Volumes, &berthv1.NodeVolumeRef{Namespace: v.GetNamespace(), Name: v.GetName()})
	}
	cctx, cancel := context.WithTimeout(ctx, volumeNodeTimeout)
	defer cancel()
	resp, err := cli.VolumeUsage(cctx, req)
	if err != nil {
		fail(fmt.Sprintf("node %s cannot be reached: %s", n.GetName(), status.Convert(err).Message()))
		return
	}
	got := map[string]*berthv1.NodeVolumeUsage{}
	for _, u := range resp.GetVolumes() {
		got[u.GetNamespace()+"/"+u.GetName()] = u
	}
	for _, i := range idx {
		v := out[i].GetVolume()
		u := got[v.GetNamespace()+"/"+v.GetName()]
		if u == nil || !u.GetExists() {
			out[i].SizeError = fmt.Sprintf("node %s has no data for it yet", n.GetName())
			continue
		}
		out[i].SizeBytes = u.GetSizeBytes()
	}
}

func volumeNotFound(ns, name string) error {
	return status.Errorf(codes.NotFound, "volume %q not found in namespace %q; berth volume ls lists the volumes", name, ns)
}
