package apiserver

import (
	"context"
	"errors"
	"fmt"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/registry"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// WarningHeader is the response header that carries warnings about a
// request that succeeded (a login that could not be checked, an image tag
// that could not be pinned to a digest); clients print them.
const WarningHeader = "berth-warning"

// warn sends warnings to the client in the WarningHeader; outside a gRPC
// call (a test calling the method) there is nowhere to send them.
func warn(ctx context.Context, warnings ...string) {
	if len(warnings) == 0 {
		return
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs(appendPairs(warnings)...))
}

func appendPairs(warnings []string) []string {
	kv := make([]string, 0, 2*len(warnings))
	for _, w := range warnings {
		kv = append(kv, WarningHeader, w)
	}
	return kv
}

func (s *Server) registries() (*registry.Credentials, error) {
	if s.cfg.Registries == nil {
		return nil, status.Error(codes.Unimplemented, "this server keeps no registry credentials")
	}
	return s.cfg.Registries, nil
}

// registryOf returns the credentials and the normalized host of a
// registry a request names.
func (s *Server) registryOf(name string) (*registry.Credentials, string, error) {
	regs, err := s.registries()
	if err != nil {
		return nil, "", err
	}
	host, err := registry.Normalize(name)
	if err != nil {
		return nil, "", status.Error(codes.InvalidArgument, err.Error())
	}
	return regs, host, nil
}

// Login checks a credential against its registry and stores it, sealed.
//
// A registry that refuses the credential fails the login
// (Unauthenticated). A registry the server cannot reach (it may be
// reachable from the nodes only) does not: the credential is stored and
// the answer carries a warning, since the nodes are what pull.
func (s *Server) Login(ctx context.Context, req *berthv1.LoginRequest) (*berthv1.LoginResponse, error) {
	regs, host, err := s.registryOf(req.Registry)
	if err != nil {
		return nil, err
	}
	if req.Username == "" {
		return nil, status.Errorf(codes.InvalidArgument, "login to %s: the username is empty; give it with -u", host)
	}
	if req.Password == "" {
		return nil, status.Errorf(codes.InvalidArgument, "login to %s: the password is empty; type it at the prompt or pipe it with --password-stdin", host)
	}
	var warnings []string
	switch err := registry.Check(ctx, host, req.Username, req.Password, regs.Insecure(host)); {
	case err == nil:
	case errors.Is(err, registry.ErrUnauthorized):
		return nil, status.Errorf(codes.Unauthenticated, "login to %s failed: %v; check the username and password", host, err)
	case ctx.Err() != nil:
		return nil, status.FromContextError(ctx.Err()).Err()
	default:
		hint := ""
		if !regs.Insecure(host) {
			hint = fmt.Sprintf(" (a registry served over plain HTTP must be listed: berth cluster settings --insecure-registry %s)", host)
		}
		warnings = append(warnings, fmt.Sprintf("credential stored without checking it: %v%s", err, hint))
	}
	if err := regs.Put(ctx, host, req.Username, req.Password); err != nil {
		return nil, storeError(err)
	}
	s.log.Info("registry login stored", "registry", host, "username", req.Username, "checked", len(warnings) == 0)
	s.cfg.Store.RecordEvent(&berthv1.Event{Kind: store.EventKindCluster, ObjectId: host, Action: "login", Message: fmt.Sprintf("credential of %s stored for %s", req.Username, host)})
	warn(ctx, warnings...)
	return &berthv1.LoginResponse{}, nil
}

// Logout removes the credential of a registry.
func (s *Server) Logout(ctx context.Context, req *berthv1.LogoutRequest) (*berthv1.LogoutResponse, error) {
	regs, host, err := s.registryOf(req.Registry)
	if err != nil {
		return nil, err
	}
	found, err := regs.Delete(ctx, host)
	if err != nil {
		return nil, storeError(err)
	}
	if !found {
		return nil, status.Errorf(codes.NotFound, "no credential is stored for %s; `berth registry ls` lists them", host)
	}
	s.log.Info("registry login removed", "registry", host)
	s.cfg.Store.RecordEvent(&berthv1.Event{Kind: store.EventKindCluster, ObjectId: host, Action: "logout", Message: "credential of " + host + " removed"})
	return &berthv1.LogoutResponse{}, nil
}

// ListRegistries lists the stored credentials without their secrets.
func (s *Server) ListRegistries(ctx context.Context, req *berthv1.ListRegistriesRequest) (*berthv1.ListRegistriesResponse, error) {
	regs, err := s.registries()
	if err != nil {
		return nil, err
	}
	return &berthv1.ListRegistriesResponse{Registries: regs.List()}, nil
}
