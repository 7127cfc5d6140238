package orchestrator

import (
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/volume"
	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/scheduler"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// volumeRecord is a write of a named volume's record that goes with the
// placement of a task, in the same transaction: a volume is never known
// on a node that no task of its slot was placed on, nor the reverse.
type volumeRecord struct {
	key string
	// current is the stored record; nil when the write creates it.
	current *berthv1.Volume
	next    *berthv1.Volume
}

// add puts the write in txn, guarded: a record made or changed by
// someone else since the cache read it (`berth volume rm`) fails the
// transaction, and the next pass decides again.
func (v volumeRecord) add(txn *store.Txn) {
	if v.current == nil {
		txn.Create(v.key, v.next)
		return
	}
	txn.Update(v.key, v.next)
}

// volumeRecords returns the writes that record where the named volumes of
// t are now that it is placed on nodeID: a new record for a volume that
// has none (its slot's first task), and the task (and the node, when
// unset) of one that has. written holds the keys this pass writes
// already: a pass writes a key once.
func (o *Orchestrator) volumeRecords(t *berthv1.Task, nodeID string, now time.Time, written map[string]bool) []volumeRecord {
	if !volume.HasNamed(t.GetSpec()) {
		return nil
	}
	var nodeName string
	if n, ok := o.cache.Node(nodeID); ok {
		nodeName = n.GetName()
	}
	if t.GetSlot() == 0 && nodeName == "" {
		// A global task's volume is named after its node.
		return nil
	}
	ts := timestamppb.New(now)
	id := t.GetMeta().GetId()
	var out []volumeRecord
	for _, v := range scheduler.TaskVolumes(t.GetSpec(), t.GetSlot(), nodeName) {
		key := store.VolumeKey(t.Namespace, v.Name)
		if written[key] {
			continue
		}
		cur, ok := o.cache.Volume(t.Namespace, v.Name)
		switch {
		case !ok:
			rec := &berthv1.Volume{
				Meta:      &berthv1.Meta{Id: store.NewID(), CreatedAt: ts, UpdatedAt: ts},
				Namespace: t.Namespace,
				Name:      v.Name,
				Source:    v.Source,
				Service:   t.Service,
				Slot:      t.GetSlot(),
				NodeId:    nodeID,
				TaskId:    id,
			}
			if !v.External {
				rec.App = t.App
			}
			out = append(out, volumeRecord{key: key, next: rec})
		case cur.GetNodeId() != "" && cur.GetNodeId() != nodeID:
			// The scheduler pins the slot to the volume's node; a record
			// that moved under it is left to the next pass.
			o.log.Warn("task placed away from its volume", "task", describe(t), "volume", v.Name, "volume_node", cur.GetNodeId(), "node", nodeID)
			continue
		case cur.GetNodeId() == nodeID && cur.GetTaskId() == id:
			continue
		default:
			next := proto.Clone(cur).(*berthv1.Volume)
			next.NodeId, next.TaskId = nodeID, id
			if next.Meta == nil {
				next.Meta = &berthv1.Meta{}
			}
			next.Meta.UpdatedAt = ts
			out = append(out, volumeRecord{key: key, current: cur, next: next})
		}
		written[key] = true
	}
	return out
}

// placement is the assignment of a stored task that writes volume
// records: the task's change and the records commit together.
type placement struct {
	change  store.Change
	volumes []volumeRecord
}

// txn returns the placement's transaction, or nil when the task needs no
// change any more.
func (p placement) txn() *store.Txn {
	next := proto.Clone(p.change.Current).(store.Object)
	if !p.change.Apply(next) {
		return nil
	}
	txn := &store.Txn{}
	txn.Update(p.change.Key, next)
	for _, v := range p.volumes {
		v.add(txn)
	}
	return txn
}

// createTxns splits the creation of new tasks, each with its volume
// records, into transactions within etcd's limit.
func (w *writes) createTxns() []*store.Txn {
	var txns []*store.Txn
	txn := &store.Txn{}
	for _, t := range w.creates {
		vols := w.volumes[t.GetMeta().GetId()]
		if txn.Len() > 0 && txn.Len()+1+len(vols) > store.MaxTxnOps {
			txns = append(txns, txn)
			txn = &store.Txn{}
		}
		txn.Create(taskKey(t), t)
		for _, v := range vols {
			v.add(txn)
		}
	}
	if txn.Len() > 0 {
		txns = append(txns, txn)
	}
	for _, p := range w.placements {
		if txn := p.txn(); txn != nil {
			txns = append(txns, txn)
		}
	}
	return txns
}
