// Package revision keeps a service's earlier specs and makes one of them
// current again. The API server (apply, rollout undo) and the orchestrator
// (an update's automatic rollback) change a service's spec through it, so
// the history reads the same whoever wrote it.
package revision

import (
	"fmt"
	"strings"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Limit is how many earlier specs a service keeps.
const Limit = 10

// Change makes spec the service's new current spec, as version
// SpecVersion+1, and keeps the spec it replaces among the revisions. state
// is how the change rolls out: UPDATING for an apply, ROLLBACK_STARTED for a
// rollback; message says why, for the update status.
func Change(svc *berthv1.Service, spec *berthv1.ServiceSpec, cause string, state berthv1.UpdateState, message string, now time.Time) {
	ts := timestamppb.New(now)
	created := svc.GetSpecUpdatedAt()
	if created == nil {
		created = svc.GetMeta().GetCreatedAt()
	}
	svc.Revisions = append(svc.Revisions, &berthv1.ServiceRevision{
		SpecVersion: svc.SpecVersion,
		Spec:        svc.Spec,
		CreatedAt:   created,
		ChangeCause: svc.ChangeCause,
	})
	if over := len(svc.Revisions) - Limit; over > 0 {
		svc.Revisions = append([]*berthv1.ServiceRevision(nil), svc.Revisions[over:]...)
	}
	from := svc.SpecVersion
	svc.Spec = spec
	svc.SpecVersion++
	svc.SpecUpdatedAt = ts
	svc.ChangeCause = cause
	svc.UpdateStatus = &berthv1.UpdateStatus{State: state, StartedAt: ts, FromVersion: from, Message: message}
}

// Find returns the revision to return to: version's, or with version 0 the
// newest one. The error says which versions there are.
func Find(svc *berthv1.Service, version uint64) (*berthv1.ServiceRevision, error) {
	revs := svc.GetRevisions()
	if len(revs) == 0 {
		return nil, fmt.Errorf("service %s/%s has no earlier version to roll back to", svc.GetApp(), svc.GetName())
	}
	if version == 0 {
		return revs[len(revs)-1], nil
	}
	versions := make([]string, len(revs))
	for i, r := range revs {
		if r.GetSpecVersion() == version {
			return r, nil
		}
		versions[i] = fmt.Sprint(r.GetSpecVersion())
	}
	return nil, fmt.Errorf("service %s/%s has no version %d; its earlier versions are %s (see berth rollout history)",
		svc.GetApp(), svc.GetName(), version, strings.Join(versions, ", "))
}

// Rollback makes the earlier spec of rev current again, as a new version
// rolled out by the service's rollback_config. why, when set, says what
// made it roll back.
func Rollback(svc *berthv1.Service, rev *berthv1.ServiceRevision, why string, now time.Time) {
	cause := fmt.Sprintf("rollback to version %d", rev.GetSpecVersion())
	message := cause + " requested"
	if why != "" {
		cause += ": " + why
		message = cause
	}
	Change(svc, proto.Clone(rev.GetSpec()).(*berthv1.ServiceSpec), cause, berthv1.UpdateState_UPDATE_STATE_ROLLBACK_STARTED, message, now)
}
