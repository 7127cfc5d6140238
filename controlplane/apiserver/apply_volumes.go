package apiserver

import (
	"fmt"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/validation"
	"github.com/berthproject/berth/controlplane/store"
)

// checkVolumeOwners checks that no volume the app defines as its own is
// another app's: its slots would take that app's data, and deleting
// either app with its volumes would remove the other's.
func (s *Server) checkVolumeOwners(req *berthv1.ApplyRequest) validation.Errors {
	if len(req.GetVolumes()) == 0 {
		return nil
	}
	owners := map[string]string{}
	for _, v := range s.cfg.Cache.Volumes(store.NamespaceVolumesPrefix(req.Namespace)) {
		if v.GetApp() != "" && v.GetApp() != req.App {
			owners[v.GetSource()] = v.GetApp()
		}
	}
	var errs validation.Errors
	for _, av := range req.GetVolumes() {
		owner, taken := owners[av.GetName()]
		if av.GetExternal() || !taken {
			continue
		}
		key := av.GetKey()
		if key == "" {
			key = av.GetName()
		}
		errs = append(errs, validation.FieldError{Field: "volumes." + key + ".name",
			Reason: fmt.Sprintf("volume %s belongs to app %s; give this volume another name, or use that one with external: true", av.GetName(), owner)})
	}
	return errs
}
