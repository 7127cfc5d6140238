package apiserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/proto"
)

// configFiles is how the code shared with secrets handles configs: their
// data is kept as it is, and their digest is its SHA-256.
var configFiles = fileKind{
	word: "config",
	key:  store.ConfigKey,
	get: func(s *Server, ns, name string) (fileObject, bool) {
		cf, ok := s.cfg.Cache.Config(ns, name)
		return cf, ok
	},
	list: func(s *Server, ns string) []fileObject {
		return asFileObjects(s.cfg.Cache.Configs(store.NamespaceConfigsPrefix(ns)))
	},
	digest: func(_ *Server, data []byte) string { return configDigest(data) },
	build: func(_ *Server, f fileVersion) (fileObject, error) {
		return &berthv1.Config{
			Meta: f.meta, Namespace: f.namespace, Name: f.name, App: f.app, Version: f.version,
			Digest: f.digest, Data: f.data, Labels: f.labels, Size: int64(len(f.data)),
		}, nil
	},
	refs: (*berthv1.ServiceSpec).GetConfigs,
}

// configDigest is "sha256:<hex>" of a config's data.
func configDigest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// configSummary is a config with the services that use it; withData
// keeps its data (one config asked for), else it is left out (listings).
func (s *Server) configSummary(cf *berthv1.Config, withData bool) *berthv1.ConfigSummary {
	if !withData {
		cf = proto.Clone(cf).(*berthv1.Config)
		cf.Data = nil
	}
	return &berthv1.ConfigSummary{
		Config:   cf,
		Services: serviceNames(s.fileUsers(configFiles, cf.GetNamespace(), cf.GetName(), "")),
	}
}

// CreateConfig makes a config; with update, a new version of an existing
// one, which rolls out the services that use it.
func (s *Server) CreateConfig(ctx context.Context, req *berthv1.CreateConfigRequest) (*berthv1.Config, error) {
	obj, err := s.createFile(ctx, configFiles, fileRequest{namespace: req.Namespace, name: req.Name, data: req.Data, labels: req.Labels, update: req.Update})
	if err != nil {
		return nil, err
	}
	return obj.(*berthv1.Config), nil
}

// ListConfigs lists the configs of a namespace (every namespace the
// caller may see with all_namespaces) with the services that use each; their data is left out, as
// GetConfig gives it.
func (s *Server) ListConfigs(ctx context.Context, req *berthv1.ListConfigsRequest) (*berthv1.ListConfigsResponse, error) {
	sc := listScope(ctx, req.Namespace, req.AllNamespaces)
	prefix := sc.prefix(store.ConfigsPrefix)
	resp := &berthv1.ListConfigsResponse{}
	for _, cf := range s.cfg.Cache.Configs(prefix) {
		if !sc.has(cf.GetNamespace()) {
			continue
		}
		resp.Configs = append(resp.Configs, s.configSummary(cf, false))
	}
	return resp, nil
}

// GetConfig returns one config, with its data (configs are not secret),
// and the services that use it.
func (s *Server) GetConfig(ctx context.Context, req *berthv1.GetConfigRequest) (*berthv1.ConfigSummary, error) {
	ns := namespaceOf(req.Namespace)
	cf, ok := s.cfg.Cache.Config(ns, req.Name)
	if !ok {
		return nil, fileNotFound(configFiles, ns, req.Name)
	}
	return s.configSummary(cf, true), nil
}

// RemoveConfig removes a config no service uses.
func (s *Server) RemoveConfig(ctx context.Context, req *berthv1.RemoveConfigRequest) (*berthv1.RemoveConfigResponse, error) {
	if err := s.removeFile(ctx, configFiles, req.Namespace, req.Name); err != nil {
		return nil, err
	}
	return &berthv1.RemoveConfigResponse{}, nil
}
