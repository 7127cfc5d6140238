package apiserver

import (
	"fmt"
	"maps"
	"slices"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// planFiles adds to txn the writes that make the app's secrets and
// configs the requested ones, and points the services' references at
// their versions, before the services are compared with the stored ones:
// a secret whose data changed is a new version, which changes the spec of
// every service that uses it and so rolls it out by its update_config.
// See planFileKind.
func (s *Server) planFiles(req *berthv1.ApplyRequest, now time.Time, txn *store.Txn) validation.Errors {
	errs := s.planFileKind(secretFiles, req, req.GetSecrets(), now, txn)
	return append(errs, s.planFileKind(configFiles, req, req.GetConfigs(), now, txn)...)
}

// planFileKind plans one kind (secrets or configs) of the app's files:
// new ones are created as the app's own, those of the app that exist get
// a new version when their data changed (rolling out the services of
// other apps that use them too), external ones must exist, and the app's
// own that the request no longer names are removed unless another app's
// service uses them. Every reference of the request's services must name
// one the request defines or one that exists; it gets that one's version
// and digest.
func (s *Server) planFileKind(k fileKind, req *berthv1.ApplyRequest, files []*berthv1.AppFile, now time.Time, txn *store.Txn) validation.Errors {
	ns, app := req.Namespace, req.App
	ts := timestamppb.New(now)
	own := map[string]fileObject{}
	for _, f := range k.list(s, ns) {
		if f.GetApp() == app {
			own[f.GetName()] = f
		}
	}
	var errs validation.Errors
	fail := func(f *berthv1.AppFile, reason string) {
		errs = append(errs, validation.FieldError{Field: fileField(k, f), Reason: reason})
	}
	// defined are the versions the request's services may name, by name;
	// written are those this transaction writes (and so guards).
	defined := map[string]fileObject{}
	written := map[string]bool{}
	for _, f := range files {
		name := f.GetName()
		if _, twice := defined[name]; twice {
			fail(f, fmt.Sprintf("%s %q is defined twice; give each a distinct name", k.word, name))
			continue
		}
		if f.GetExternal() {
			if e := validation.ValidateFileName(k.word, name); e != nil {
				fail(f, e.Error())
				continue
			}
		} else if fe := validateFile(k, fileField(k, f), name, f.GetData(), f.GetLabels()); len(fe) > 0 {
			errs = append(errs, fe...)
			continue
		}
		cur, exists := k.get(s, ns, name)
		delete(own, name)
		switch {
		case f.GetExternal():
			if !exists {
				fail(f, fmt.Sprintf("%s %q does not exist in namespace %q; create it with berth %s create %s FILE (or - for stdin)", k.word, name, ns, k.word, name))
				continue
			}
			defined[name] = cur
		case exists && cur.GetApp() != app:
			owner := "made with berth " + k.word + " create"
			if cur.GetApp() != "" {
				owner = fmt.Sprintf("of app %q", cur.GetApp())
			}
			fail(f, fmt.Sprintf("%s %q already exists (%s); use it with external: true, or give this %s another name", k.word, name, owner, k.word))
		case exists:
			next, changed, err := s.nextVersion(k, cur, f.GetData(), f.GetLabels(), ts)
			if err != nil {
				fail(f, err.Error())
				continue
			}
			if next == nil {
				defined[name] = cur
				continue
			}
			txn.Update(k.key(ns, name), next)
			defined[name], written[name] = next, true
			if changed {
				// The app's own services follow through the spec
				// comparison; other apps' services are rolled here.
				rollUsers(txn, k, s.fileUsers(k, ns, name, app), next, now)
			}
		default:
			obj, err := s.firstVersion(k, ns, name, app, f.GetData(), f.GetLabels(), ts)
			if err != nil {
				fail(f, err.Error())
				continue
			}
			txn.Create(k.key(ns, name), obj)
			defined[name], written[name] = obj, true
		}
	}
	named := map[string]bool{}
	for _, svc := range req.GetServices() {
		for i, r := range k.refs(svc.GetSpec()) {
			f, ok := defined[r.GetName()]
			if !ok {
				// A service may name one that exists without listing it:
				// callers that send specs alone.
				f, ok = k.get(s, ns, r.GetName())
			}
			if !ok {
				errs = append(errs, validation.FieldError{Service: svc.GetName(), Field: fmt.Sprintf("%ss[%d]", k.word, i),
					Reason: fmt.Sprintf("%s %q is not defined in the file's top-level %ss: and does not exist in namespace %q; define it there, or create it with berth %s create", k.word, r.GetName(), k.word, ns, k.word)})
				continue
			}
			r.Version, r.Digest = f.GetVersion(), f.GetDigest()
			if !written[r.GetName()] && !named[r.GetName()] {
				// The spec pins this version: an update or a removal of
				// the secret meanwhile makes the apply read it again.
				txn.Guard(k.key(ns, r.GetName()), f.GetMeta().GetVersion())
			}
			named[r.GetName()] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(own)) {
		if named[name] {
			continue // the app's services still name it
		}
		if users := s.fileUsers(k, ns, name, app); len(users) > 0 {
			errs = append(errs, validation.FieldError{Field: k.word + "s." + name, Reason: fmt.Sprintf("%s %s is still used by %s of another app; keep it in this app, or take it out of theirs first", k.word, name, joinServices(serviceNames(users)))})
			continue
		}
		txn.Delete(k.key(ns, name), own[name].GetMeta().GetVersion())
	}
	return errs
}

// fileField names an app's secret or config in errors: "secrets.<key>".
func fileField(k fileKind, f *berthv1.AppFile) string {
	key := f.GetKey()
	if key == "" {
		key = f.GetName()
	}
	return k.word + "s." + key
}

// deleteAppFiles adds to txn the removal of an app's own secrets and
// configs, and returns how many; it fails (FailedPrecondition) when a
// service of another app still uses one.
func (s *Server) deleteAppFiles(txn *store.Txn, ns, app string) (int, error) {
	n := 0
	for _, k := range []fileKind{secretFiles, configFiles} {
		for _, f := range k.list(s, ns) {
			if f.GetApp() != app {
				continue
			}
			if users := s.fileUsers(k, ns, f.GetName(), app); len(users) > 0 {
				return 0, status.Errorf(codes.FailedPrecondition, "%s %s of app %s is used by %s; take it out of their Compose files (or delete their apps) first", k.word, f.GetName(), app, joinServices(serviceNames(users)))
			}
			txn.Delete(k.key(ns, f.GetName()), f.GetMeta().GetVersion())
			n++
		}
	}
	return n, nil
}
