// Package revision keeps a service's earlier specs and makes one of them
// current again. The API server (apply, rollout undo) and the orchestrator
// (an update's automatic rollback) change a service's spec through it, so
// the history reads the same whoever wrote it.
package revision

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Limit is how many earlier specs a service keeps; the oldest is dropped
// first.
const Limit = 10

// Errors of Find, wrapped with the service and the versions it keeps.
var (
	// ErrNoRevisions says the service keeps no earlier spec.
	ErrNoRevisions = errors.New("no earlier version to roll back to")
	// ErrCurrentVersion says the version asked for is the current spec.
	ErrCurrentVersion = errors.New("already the current spec")
	// ErrNoSuchVersion says the service keeps no spec of the version
	// asked for.
	ErrNoSuchVersion = errors.New("no version")
)

// Change makes spec the service's new current spec, as version
// SpecVersion+1, and keeps the spec it replaces among the revisions. state
// is how the change rolls out: UPDATING for an apply, ROLLBACK_STARTED for a
// rollback; message says why, for the update status.
func Change(svc *berthv1.Service, spec *berthv1.ServiceSpec, cause string, state berthv1.UpdateState, message string, now time.Time) {
	ts := timestamppb.New(now)
	created := svc.GetSpecUpdatedAt()
	if created == nil {
		// Stored before spec versions had a time of their own.
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
// newest one. Its errors wrap ErrNoRevisions, ErrCurrentVersion or
// ErrNoSuchVersion and say which versions there are.
func Find(svc *berthv1.Service, version uint64) (*berthv1.ServiceRevision, error) {
	name := svc.GetApp() + "/" + svc.GetName()
	revs := svc.GetRevisions()
	if len(revs) == 0 {
		return nil, fmt.Errorf("service %s has %w: version %d is the only one kept", name, ErrNoRevisions, svc.GetSpecVersion())
	}
	if version == 0 {
		return revs[len(revs)-1], nil
	}
	for _, r := range revs {
		if r.GetSpecVersion() == version {
			return r, nil
		}
	}
	if version == svc.GetSpecVersion() {
		return nil, fmt.Errorf("version %d is %w of service %s; name an earlier one (%s)", version, ErrCurrentVersion, name, versionList(revs))
	}
	return nil, fmt.Errorf("service %s has %w %d to roll back to; the versions kept are %s (see berth rollout history)", name, ErrNoSuchVersion, version, versionList(revs))
}

// versionList names the spec versions of revs, oldest first.
func versionList(revs []*berthv1.ServiceRevision) string {
	parts := make([]string, len(revs))
	for i, r := range revs {
		parts[i] = strconv.FormatUint(r.GetSpecVersion(), 10)
	}
	return strings.Join(parts, ", ")
}

// Rollback makes the earlier spec of rev current again, as a new version
// rolled out by the service's rollback_config. The fields whose change
// makes no version (see NeedsNewVersion) keep their current values: the
// replicas (when the mode is the same), depends_on and the update and
// rollback configs. why, when set, says what made it roll back; without it
// the change cause is "rollback to version N", an operator's request.
func Rollback(svc *berthv1.Service, rev *berthv1.ServiceRevision, why string, now time.Time) {
	cause := fmt.Sprintf("rollback to version %d", rev.GetSpecVersion())
	message := cause + " requested"
	if why != "" {
		cause += ": " + why
		message = cause
	}
	spec := proto.Clone(rev.GetSpec()).(*berthv1.ServiceSpec)
	keepInPlaceFields(spec, svc.GetSpec())
	Change(svc, spec, cause, berthv1.UpdateState_UPDATE_STATE_ROLLBACK_STARTED, message, now)
}

// KeepRestarts gives next, a spec asked for by an apply, the restart
// generation of cur, the stored spec: restarts are asked with `berth
// rollout restart`, never by a Compose file, so an apply neither undoes
// nor repeats one.
func KeepRestarts(next, cur *berthv1.ServiceSpec) {
	if next != nil {
		next.RestartGeneration = cur.GetRestartGeneration()
	}
}
