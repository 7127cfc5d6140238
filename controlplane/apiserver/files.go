package apiserver

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/revision"
	"github.com/berthproject/berth/api/validation"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// fileObject is a stored Secret or Config: what the code they share reads
// of them.
type fileObject interface {
	store.Object
	GetNamespace() string
	GetName() string
	GetApp() string
	GetVersion() uint64
	GetDigest() string
	GetLabels() map[string]string
}

// fileKind is what tells secrets and configs apart to the code they
// share: their word in messages, where they are stored, how their data is
// kept and which references of a spec name them.
type fileKind struct {
	// word is "secret" or "config".
	word string
	key  func(ns, name string) string
	get  func(s *Server, ns, name string) (fileObject, bool)
	list func(s *Server, ns string) []fileObject
	// digest tells versions of data apart.
	digest func(s *Server, data []byte) string
	// build makes the record of one version of data; the secret's is
	// sealed.
	build func(s *Server, f fileVersion) (fileObject, error)
	// refs are the references of a spec to this kind.
	refs func(*berthv1.ServiceSpec) []*berthv1.FileReference
}

// fileVersion is one version of a secret's or config's data, to store.
type fileVersion struct {
	meta            *berthv1.Meta
	namespace, name string
	app             string
	version         uint64
	digest          string
	data            []byte
	labels          map[string]string
}

// validateFile checks a secret's or config's name, data and labels;
// field prefixes the fields of the errors ("" for a request of its own).
func validateFile(k fileKind, field, name string, data []byte, labels map[string]string) validation.Errors {
	var errs validation.Errors
	at := func(f string) string {
		if field == "" {
			return f
		}
		return field + "." + f
	}
	if err := validation.ValidateFileName(k.word, name); err != nil {
		errs = append(errs, validation.FieldError{Field: at("name"), Reason: err.Error()})
	}
	if err := validation.ValidateFileSize(k.word, len(data)); err != nil {
		errs = append(errs, validation.FieldError{Field: at("data"), Reason: err.Error()})
	}
	for key := range labels {
		if strings.TrimSpace(key) == "" {
			errs = append(errs, validation.FieldError{Field: at("labels"), Reason: "a label has an empty key"})
		}
	}
	return errs
}

// nextVersion is the record that replaces cur with data and labels: a new
// version when the data changed, else the same version with the labels.
// changed says whether the data changed; unchanged data and labels give a
// nil record.
func (s *Server) nextVersion(k fileKind, cur fileObject, data []byte, labels map[string]string, ts *timestamppb.Timestamp) (next fileObject, changed bool, err error) {
	digest := k.digest(s, data)
	changed = digest != cur.GetDigest()
	if !changed && maps.Equal(labels, cur.GetLabels()) {
		return nil, false, nil
	}
	meta := proto.Clone(cur.GetMeta()).(*berthv1.Meta)
	meta.UpdatedAt = ts
	version := cur.GetVersion()
	if changed {
		version++
	}
	next, err = k.build(s, fileVersion{
		meta: meta, namespace: cur.GetNamespace(), name: cur.GetName(), app: cur.GetApp(),
		version: version, digest: digest, data: data, labels: labels,
	})
	return next, changed, err
}

// firstVersion is the record of a new secret or config.
func (s *Server) firstVersion(k fileKind, ns, name, app string, data []byte, labels map[string]string, ts *timestamppb.Timestamp) (fileObject, error) {
	return k.build(s, fileVersion{
		meta:      &berthv1.Meta{Id: store.NewID(), CreatedAt: ts, UpdatedAt: ts},
		namespace: ns, name: name, app: app, version: 1, digest: k.digest(s, data), data: data, labels: labels,
	})
}

// fileUsers returns the services of namespace ns whose spec names the
// secret or config name, sorted by app and name; except skips the
// services of one app.
func (s *Server) fileUsers(k fileKind, ns, name, except string) []*berthv1.Service {
	var out []*berthv1.Service
	for _, svc := range s.cfg.Cache.Services(store.ServicesPrefix + ns + "/") {
		if svc.GetApp() == except && except != "" {
			continue
		}
		if slices.ContainsFunc(k.refs(svc.GetSpec()), func(r *berthv1.FileReference) bool { return r.GetName() == name }) {
			out = append(out, svc)
		}
	}
	return out
}

// serviceNames names services as "app/service".
func serviceNames(services []*berthv1.Service) []string {
	out := make([]string, len(services))
	for i, svc := range services {
		out[i] = svc.GetApp() + "/" + svc.GetName()
	}
	slices.Sort(out)
	return out
}

// rollUsers adds to txn the change of every service in users whose spec
// names f at another version: its references take f's version and
// digest, as a new spec version that rolls out by the service's
// update_config, as RestartService's does. It returns the services
// changed, as they will be stored.
func rollUsers(txn *store.Txn, k fileKind, users []*berthv1.Service, f fileObject, now time.Time) []*berthv1.Service {
	var out []*berthv1.Service
	cause := fmt.Sprintf("%s %s changed to version %d", k.word, f.GetName(), f.GetVersion())
	for _, svc := range users {
		spec := proto.Clone(svc.GetSpec()).(*berthv1.ServiceSpec)
		moved := false
		for _, r := range k.refs(spec) {
			if r.GetName() == f.GetName() && (r.GetVersion() != f.GetVersion() || r.GetDigest() != f.GetDigest()) {
				r.Version, r.Digest = f.GetVersion(), f.GetDigest()
				moved = true
			}
		}
		if !moved {
			continue
		}
		next := proto.Clone(svc).(*berthv1.Service)
		next.Meta.UpdatedAt = timestamppb.New(now)
		revision.Change(next, spec, cause, berthv1.UpdateState_UPDATE_STATE_UPDATING, cause, now)
		txn.Update(store.ServiceKey(next.GetNamespace(), next.GetApp(), next.GetName()), next)
		out = append(out, next)
	}
	return out
}

// recordRolls records an event for each service a new version of a
// secret or config rolls out.
func (s *Server) recordRolls(k fileKind, f fileObject, rolled []*berthv1.Service) {
	for _, svc := range rolled {
		s.log.Info("service rolls out a new version of a "+k.word, "namespace", svc.GetNamespace(), "app", svc.GetApp(), "service", svc.GetName(), k.word, f.GetName(), "version", f.GetVersion())
		s.cfg.Store.RecordEvent(serviceEvent(svc, "update", fmt.Sprintf("%s %s changed to version %d: spec version %d rolls out", k.word, f.GetName(), f.GetVersion(), svc.GetSpecVersion())))
	}
}

// fileEvent records something that happened to a secret or config; the
// message never holds data.
func fileEvent(k fileKind, ns, name, action, message string) *berthv1.Event {
	return &berthv1.Event{
		Kind: k.word, ObjectId: ns + "/" + name, Action: action, Message: message,
		Attributes: map[string]string{store.AttrNamespace: ns},
	}
}

// fileRequest is a CreateSecret or CreateConfig request.
type fileRequest struct {
	namespace, name string
	data            []byte
	labels          map[string]string
	update          bool
}

// createFile makes a secret or config, or with update a new version of
// one (only when its data changed), which rolls out every service of the
// namespace that uses it, in the same transaction. It returns the record
// as stored (still sealed).
func (s *Server) createFile(ctx context.Context, k fileKind, req fileRequest) (fileObject, error) {
	ns := namespaceOf(req.namespace)
	if errs := validateFile(k, "", req.name, req.data, req.labels); len(errs) > 0 {
		return nil, errs.GRPCStatus().Err()
	}
	for attempt := 0; ; attempt++ {
		now := time.Now()
		ts := timestamppb.New(now)
		cur, exists := k.get(s, ns, req.name)
		var (
			txn    store.Txn
			obj    fileObject
			rolled []*berthv1.Service
			action = "create"
		)
		switch {
		case exists && !req.update:
			return nil, status.Errorf(codes.AlreadyExists, "%s %q already exists in namespace %q; give --update to replace its data (a new version, which rolls out the services that use it), or choose another name", k.word, req.name, ns)
		case exists && cur.GetApp() != "":
			return nil, status.Errorf(codes.FailedPrecondition, "%s %q belongs to app %q: change it in the app's Compose file and apply it", k.word, req.name, cur.GetApp())
		case exists:
			next, changed, err := s.nextVersion(k, cur, req.data, req.labels, ts)
			if err != nil {
				return nil, storeError(err)
			}
			if next == nil {
				return cur, nil
			}
			obj, action = next, "update"
			txn.Update(k.key(ns, req.name), next)
			if changed {
				rolled = rollUsers(&txn, k, s.fileUsers(k, ns, req.name, ""), next, now)
			}
		default:
			var err error
			if obj, err = s.firstVersion(k, ns, req.name, "", req.data, req.labels, ts); err != nil {
				return nil, storeError(err)
			}
			txn.Create(k.key(ns, req.name), obj)
		}
		rev, retry, err := s.commit(ctx, &txn, attempt)
		if retry {
			continue
		}
		if err != nil {
			return nil, err
		}
		s.log.Info(k.word+" "+action+"d", "namespace", ns, "name", req.name, "version", obj.GetVersion(), "services", len(rolled))
		s.cfg.Store.RecordEvent(fileEvent(k, ns, req.name, action, fmt.Sprintf("version %d (%s)", obj.GetVersion(), obj.GetDigest())))
		s.recordRolls(k, obj, rolled)
		if err := s.cfg.Cache.WaitRevision(ctx, rev); err != nil {
			return nil, storeError(err)
		}
		if stored, ok := k.get(s, ns, req.name); ok {
			return stored, nil
		}
		obj.GetMeta().Version = rev
		return obj, nil
	}
}

// removeFile removes a secret or config made with createFile that no
// service uses; an app's own go with the app.
func (s *Server) removeFile(ctx context.Context, k fileKind, namespace, name string) error {
	ns := namespaceOf(namespace)
	for attempt := 0; ; attempt++ {
		// Read before the users: the removal commits only if no service
		// of the namespace changed since (one may have started using it).
		seen := s.cfg.Cache.Revision()
		cur, ok := k.get(s, ns, name)
		if !ok {
			return fileNotFound(k, ns, name)
		}
		if cur.GetApp() != "" {
			return status.Errorf(codes.FailedPrecondition, "%s %q belongs to app %q and goes with it: remove it from the app's Compose file and apply, or delete the app (berth delete %s)", k.word, name, cur.GetApp(), cur.GetApp())
		}
		if users := s.fileUsers(k, ns, name, ""); len(users) > 0 {
			return status.Errorf(codes.FailedPrecondition, "%s %q is used by %s; take it out of their Compose files (or delete their apps) first", k.word, name, joinServices(serviceNames(users)))
		}
		var txn store.Txn
		txn.Delete(k.key(ns, name), cur.GetMeta().GetVersion())
		txn.GuardPrefix(store.ServicesPrefix+ns+"/", seen)
		rev, retry, err := s.commit(ctx, &txn, attempt)
		if retry {
			continue
		}
		if err != nil {
			return err
		}
		s.log.Info(k.word+" removed", "namespace", ns, "name", name)
		s.cfg.Store.RecordEvent(fileEvent(k, ns, name, "remove", fmt.Sprintf("version %d removed", cur.GetVersion())))
		return storeError(s.cfg.Cache.WaitRevision(ctx, rev))
	}
}

func fileNotFound(k fileKind, ns, name string) error {
	return status.Errorf(codes.NotFound, "%s %q not found in namespace %q; berth %s ls lists them", k.word, name, ns, k.word)
}
