package apiserver

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/berthproject/berth/api/access"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"github.com/berthproject/berth/api/validation"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// reservedUserName is the common name of the admin certificate `berth
// server` writes: no user may take it.
const reservedUserName = "admin"

// NewUserMirror follows the stored users for ListUsers. Run it before
// serving.
func NewUserMirror(st *store.Store, log *slog.Logger) *store.Mirror[*berthv1.User] {
	return store.NewMirror(st, store.UsersPrefix, func() *berthv1.User { return &berthv1.User{} }, nil, log)
}

// CreateUser signs the certificate request of a person (the key stays on
// the machine of whoever ran `berth user create`) with the role and
// namespaces asked for, and records the user. Names are unique.
func (s *Server) CreateUser(ctx context.Context, req *berthv1.CreateUserRequest) (*berthv1.CreateUserResponse, error) {
	name := strings.TrimSpace(req.GetName())
	if err := validation.ValidateName("user", name); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if name == reservedUserName {
		return nil, status.Errorf(codes.InvalidArgument, "user name %q is reserved for the certificate berth server writes; pick another", name)
	}
	if req.GetRole() == "" {
		return nil, status.Errorf(codes.InvalidArgument, "user %q needs a role: viewer, deployer or admin", name)
	}
	maker := caller(ctx)
	grant, err := grantOf(access.Principal{Role: identity.RoleViewer}, req.GetRole(), req.GetNamespaces())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "user %q: %v", name, err)
	}
	// Without namespaces a user may act in every one: that is asked for
	// by giving none, not inherited from the maker.
	if len(req.GetNamespaces()) == 0 {
		grant.Namespaces = nil
	}
	grant.Kind, grant.Name = "user", name
	if !maker.Covers(grant) {
		return nil, status.Errorf(codes.PermissionDenied, "user %q would have the %s role in %s, more than its maker %s (%s in %s) may grant",
			name, grant.Role, namespacesText(grant.Namespaces), maker, maker.Role, namespacesText(maker.Namespaces))
	}
	if len(req.GetCsr()) == 0 {
		return nil, status.Errorf(codes.InvalidArgument, "user %q: no certificate request; berth user create makes the key and the request", name)
	}
	var ttl time.Duration
	if req.GetTtl() != nil {
		if ttl = req.GetTtl().AsDuration(); ttl <= 0 {
			return nil, status.Errorf(codes.InvalidArgument, "user %q: ttl %s is not positive; leave it out for a year", name, ttl)
		}
	}
	if err := s.cfg.Users.WaitSynced(ctx); err != nil {
		return nil, storeError(err)
	}
	if _, ok := s.cfg.Users.Get(name); ok {
		return nil, userExists(name)
	}
	certPEM, err := s.cfg.Authority.SignUser(req.GetCsr(), name, grant.Role, grant.Namespaces, ttl)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "user %q: %v", name, err)
	}
	cert, err := parseCertificate(certPEM)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "user %q: reading the certificate just signed: %v", name, err)
	}
	u := &berthv1.User{
		Name: name, Role: string(grant.Role), Namespaces: grant.Namespaces, Serial: identity.Serial(cert),
		CreatedAt: timestamppb.Now(), ExpiresAt: timestamppb.New(cert.NotAfter), CreatedBy: maker.String(),
	}
	var txn store.Txn
	txn.Create(store.UserKey(name), u)
	rev, err := s.cfg.Store.Commit(ctx, &txn)
	if errors.Is(err, store.ErrConflict) {
		return nil, userExists(name)
	}
	if err != nil {
		return nil, storeError(fmt.Errorf("storing user %q: %w", name, err))
	}
	if err := s.cfg.Users.WaitRevision(ctx, rev); err != nil {
		return nil, storeError(err)
	}
	s.log.Info("user created", "name", name, "role", u.Role, "namespaces", u.Namespaces, "serial", u.Serial, "by", u.CreatedBy)
	return &berthv1.CreateUserResponse{User: u, Certificate: certPEM, CaCertificate: s.cfg.Authority.CACertPEM()}, nil
}

func userExists(name string) error {
	return status.Errorf(codes.AlreadyExists, "user %q exists; remove it first (berth user rm %s) or pick another name", name, name)
}

func parseCertificate(certPEM []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return nil, errors.New("not PEM")
	}
	return x509.ParseCertificate(block.Bytes)
}

// ListUsers lists the users by name.
func (s *Server) ListUsers(ctx context.Context, _ *berthv1.ListUsersRequest) (*berthv1.ListUsersResponse, error) {
	if err := s.cfg.Users.WaitSynced(ctx); err != nil {
		return nil, storeError(err)
	}
	users := s.cfg.Users.List()
	slices.SortFunc(users, func(a, b *berthv1.User) int { return strings.Compare(a.GetName(), b.GetName()) })
	return &berthv1.ListUsersResponse{Users: users}, nil
}

// RemoveUser forgets a user and revokes its certificate: the serial goes
// on the deny-list every handshake checks, and the user's open streams
// end.
func (s *Server) RemoveUser(ctx context.Context, req *berthv1.RemoveUserRequest) (*berthv1.RemoveUserResponse, error) {
	name := strings.TrimSpace(req.GetName())
	if err := s.cfg.Users.WaitSynced(ctx); err != nil {
		return nil, storeError(err)
	}
	u, ok := s.cfg.Users.Get(name)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no user %q; berth user ls lists them", name)
	}
	var txn store.Txn
	txn.Delete(store.UserKey(name), 0)
	txn.Put(store.RevokedKey(u.GetSerial()), &berthv1.RevokedCertificate{
		Serial: u.GetSerial(), Subject: "user/" + name, RevokedAt: timestamppb.Now(), ExpiresAt: u.GetExpiresAt(),
	})
	rev, err := s.cfg.Store.Commit(ctx, &txn)
	if err != nil {
		return nil, storeError(fmt.Errorf("removing user %q: %w", name, err))
	}
	if err := s.cfg.Users.WaitRevision(ctx, rev); err != nil {
		return nil, storeError(err)
	}
	s.log.Info("user removed, certificate revoked", "name", name, "serial", u.GetSerial(), "by", caller(ctx).String())
	return &berthv1.RemoveUserResponse{}, nil
}

// WhoAmI says who the caller is, and which cluster API methods it may
// call.
func (s *Server) WhoAmI(ctx context.Context, _ *berthv1.WhoAmIRequest) (*berthv1.WhoAmIResponse, error) {
	p := caller(ctx)
	return &berthv1.WhoAmIResponse{
		Principal: p.String(), Role: string(p.Role), Namespaces: p.Namespaces,
		Methods: access.Allowed(p, "/berth.v1.ClusterService/"),
	}, nil
}
