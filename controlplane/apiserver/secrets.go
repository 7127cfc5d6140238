package apiserver

import (
	"context"
	"errors"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/seal"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/protobuf/proto"
)

// errNoKEK is what a server without a key-encryption key answers to
// secrets: FailedPrecondition (storeError).
var errNoKEK = errors.New("this server has no key-encryption key to seal secrets with")

// secretFiles is how the code shared with configs handles secrets: their
// data is sealed with the key-encryption key, bound to the secret's
// namespace and name, and their digest is keyed by it.
var secretFiles = fileKind{
	word: "secret",
	key:  store.SecretKey,
	get: func(s *Server, ns, name string) (fileObject, bool) {
		sec, ok := s.cfg.Cache.Secret(ns, name)
		return sec, ok
	},
	list: func(s *Server, ns string) []fileObject {
		return asFileObjects(s.cfg.Cache.Secrets(store.NamespaceSecretsPrefix(ns)))
	},
	digest: func(s *Server, data []byte) string {
		if s.cfg.KEK == nil {
			return ""
		}
		return s.cfg.KEK.Digest(data)
	},
	build: func(s *Server, f fileVersion) (fileObject, error) {
		if s.cfg.KEK == nil {
			return nil, errNoKEK
		}
		sealed, err := s.cfg.KEK.Seal(seal.KindSecret, seal.SecretName(f.namespace, f.name), f.data)
		if err != nil {
			return nil, err
		}
		return &berthv1.Secret{
			Meta: f.meta, Namespace: f.namespace, Name: f.name, App: f.app, Version: f.version,
			Digest: f.digest, SealedData: sealed, Labels: f.labels, Size: int64(len(f.data)),
		}, nil
	},
	refs: (*berthv1.ServiceSpec).GetSecrets,
}

func asFileObjects[T fileObject](list []T) []fileObject {
	out := make([]fileObject, len(list))
	for i, o := range list {
		out[i] = o
	}
	return out
}

// redactSecret is sec as answers give it: without its sealed data.
func redactSecret(sec *berthv1.Secret) *berthv1.Secret {
	out := proto.Clone(sec).(*berthv1.Secret)
	out.SealedData = nil
	return out
}

// secretSummary is a secret, redacted, with the services that use it.
func (s *Server) secretSummary(sec *berthv1.Secret) *berthv1.SecretSummary {
	return &berthv1.SecretSummary{
		Secret:   redactSecret(sec),
		Services: serviceNames(s.fileUsers(secretFiles, sec.GetNamespace(), sec.GetName(), "")),
	}
}

// CreateSecret makes a secret, its data sealed; with update, a new
// version of an existing one, which rolls out the services that use it.
// The answer does not carry the data.
func (s *Server) CreateSecret(ctx context.Context, req *berthv1.CreateSecretRequest) (*berthv1.Secret, error) {
	obj, err := s.createFile(ctx, secretFiles, fileRequest{namespace: req.Namespace, name: req.Name, data: req.Data, labels: req.Labels, update: req.Update})
	if err != nil {
		return nil, err
	}
	return redactSecret(obj.(*berthv1.Secret)), nil
}

// ListSecrets lists the secrets of a namespace (every namespace the
// caller may see with all_namespaces) with the services that use each, without their data.
func (s *Server) ListSecrets(ctx context.Context, req *berthv1.ListSecretsRequest) (*berthv1.ListSecretsResponse, error) {
	sc := listScope(ctx, req.Namespace, req.AllNamespaces)
	prefix := sc.prefix(store.SecretsPrefix)
	resp := &berthv1.ListSecretsResponse{}
	for _, sec := range s.cfg.Cache.Secrets(prefix) {
		if !sc.has(sec.GetNamespace()) {
			continue
		}
		resp.Secrets = append(resp.Secrets, s.secretSummary(sec))
	}
	return resp, nil
}

// GetSecret returns one secret, without its data, with the services
// that use it.
func (s *Server) GetSecret(ctx context.Context, req *berthv1.GetSecretRequest) (*berthv1.SecretSummary, error) {
	ns := namespaceOf(req.Namespace)
	sec, ok := s.cfg.Cache.Secret(ns, req.Name)
	if !ok {
		return nil, fileNotFound(secretFiles, ns, req.Name)
	}
	return s.secretSummary(sec), nil
}

// RemoveSecret removes a secret no service uses.
func (s *Server) RemoveSecret(ctx context.Context, req *berthv1.RemoveSecretRequest) (*berthv1.RemoveSecretResponse, error) {
	if err := s.removeFile(ctx, secretFiles, req.Namespace, req.Name); err != nil {
		return nil, err
	}
	return &berthv1.RemoveSecretResponse{}, nil
}
