// Package audit records who changed what: a gRPC interceptor that writes
// one AuditRecord per call of a method that access.Methods marks Mutates
// (who, role, method, namespace, target, result, peer), to the store and,
// when asked, as JSON lines to a file; and the sweep that removes records
// past their retention.
//
// The interceptor runs after authentication (so the caller is known) and
// before authorisation (so refused calls are recorded too). A record is
// written before the call's answer returns, so nothing a caller was told
// is lost; a record that cannot be written is logged and the call still
// answers. Records never hold request bodies: only the names of what a
// call acted on.
package audit

import (
	"cmp"
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/berthproject/berth/api/access"
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/api/identity"
	"github.com/berthproject/berth/controlplane/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	// writeTimeout bounds one record's write; the caller waits for it.
	writeTimeout = 5 * time.Second
	// maxMessage bounds the error text a record keeps.
	maxMessage = 1024
	// Anonymous is the principal of a call made with no credential (an
	// agent's Join, whose join token is checked by the method).
	Anonymous = "anonymous"
)

// Config is what a Recorder needs.
type Config struct {
	Store *store.Store
	// Export, when not nil, also gets every record as one JSON object a
	// line.
	Export io.Writer
	Log    *slog.Logger
}

// Recorder records the calls that change something. Its Unary and Stream
// methods are gRPC interceptors.
type Recorder struct {
	st     *store.Store
	log    *slog.Logger
	mu     sync.Mutex // serialises lines to export
	export io.Writer
	now    func() time.Time
}

// New returns a recorder.
func New(cfg Config) *Recorder {
	return &Recorder{st: cfg.Store, export: cfg.Export, log: cmp.Or(cfg.Log, slog.Default()), now: time.Now}
}

// Unary records unary calls of mutating methods once they return.
func (r *Recorder) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	rule, ok := access.Methods[info.FullMethod]
	if !ok || !rule.Mutates {
		return handler(ctx, req)
	}
	start := r.now()
	resp, err := handler(ctx, req)
	var c call
	if m, ok := req.(proto.Message); ok {
		c.read(info.FullMethod, m)
	}
	r.record(ctx, info.FullMethod, rule, start, c, err)
	return resp, err
}

// Stream records streaming calls of mutating methods once they return.
// What a call acted on is read from the first message the handler (or an
// interceptor after this one) receives: a client stream's header, or a
// server stream's request.
func (r *Recorder) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	rule, ok := access.Methods[info.FullMethod]
	if !ok || !rule.Mutates {
		return handler(srv, ss)
	}
	start := r.now()
	w := &firstMessage{ServerStream: ss, method: info.FullMethod}
	err := handler(srv, w)
	r.record(ss.Context(), info.FullMethod, rule, start, w.call(), err)
	return err
}

// call is what a request says about itself, read as it arrives: the
// request is not kept.
type call struct {
	seen      bool
	namespace string
	target    string
}

func (c *call) read(method string, m proto.Message) {
	c.seen = true
	c.namespace, c.target = describe(method, m)
}

// firstMessage reads the first message a stream receives.
type firstMessage struct {
	grpc.ServerStream
	method string
	mu     sync.Mutex
	first  call
}

// RecvMsg receives as the stream does and describes the first message.
// Handlers may receive from a goroutine of their own (exec's stdin), so
// the description is guarded.
func (s *firstMessage) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if pm, ok := m.(proto.Message); ok && !s.first.seen {
		s.first.read(s.method, pm)
	}
	return nil
}

func (s *firstMessage) call() call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first
}

// record writes the record of one call, to the store and the export.
func (r *Recorder) record(ctx context.Context, method string, rule access.Rule, start time.Time, c call, callErr error) {
	st := status.Convert(callErr)
	rec := &berthv1.AuditRecord{
		Time:    timestamppb.New(start),
		Method:  access.ShortName(method),
		Target:  c.target,
		Code:    st.Code().String(),
		Message: truncate(st.Message(), maxMessage),
	}
	rec.Principal, rec.Role = principalOf(ctx)
	// A stream refused before its first message names no namespace.
	if rule.Scope == access.Namespaced && c.seen {
		rec.Namespace = cmp.Or(c.namespace, "default")
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		rec.Peer = p.Addr.String()
	}
	// The call may have ended because its client went: the record is
	// written all the same.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if err := r.st.PutAudit(wctx, rec); err != nil {
		r.log.Error("audit record not stored", "method", rec.Method, "principal", rec.Principal,
			"namespace", rec.Namespace, "target", rec.Target, "code", rec.Code, "err", err)
	}
	r.exportRecord(rec)
}

// exportRecord writes rec as one JSON line.
func (r *Recorder) exportRecord(rec *berthv1.AuditRecord) {
	if r.export == nil {
		return
	}
	line, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(rec)
	if err != nil {
		r.log.Error("audit record not exported", "id", rec.Id, "err", err)
		return
	}
	line = append(line, '\n')
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.export.Write(line); err != nil {
		r.log.Error("audit record not exported", "id", rec.Id, "err", err)
	}
}

// principalOf names the caller: the principal authentication put in ctx,
// else the identity of its verified certificate.
func principalOf(ctx context.Context) (name, role string) {
	if p, ok := access.FromContext(ctx); ok {
		return p.String(), string(p.Role)
	}
	if id, ok := identity.FromContext(ctx); ok {
		return id.String(), string(id.Role)
	}
	return Anonymous, ""
}

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
