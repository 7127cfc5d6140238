package cli

import berthv1 "github.com/berthproject/berth/api/berth/v1"

// pinFileVersions gives the references of services to secrets and
// configs (which a Compose file names without a version) the version and
// digest of the stored spec's reference to the same name, so a diff shows
// only what the file changes. The server sets them again when it applies;
// a new version of a secret's data shows in its plan (the service's
// changed fields), as the diff cannot see the data.
func pinFileVersions(stored map[string]*berthv1.ServiceSpec, services []*berthv1.Service) {
	for _, svc := range services {
		cur := stored[svc.GetName()]
		if cur == nil || svc.GetSpec() == nil {
			continue
		}
		pinRefs(cur.GetSecrets(), svc.GetSpec().GetSecrets())
		pinRefs(cur.GetConfigs(), svc.GetSpec().GetConfigs())
	}
}

func pinRefs(stored, refs []*berthv1.FileReference) {
	for _, r := range refs {
		if r.GetVersion() != 0 {
			continue
		}
		for _, s := range stored {
			if s.GetName() == r.GetName() {
				r.Version, r.Digest = s.GetVersion(), s.GetDigest()
				break
			}
		}
	}
}
