package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// serverError is a gRPC error from the server, worded for people. It keeps
// its status, so status.FromError (and validation.FromError) still see the
// code and details.
type serverError struct {
	addr string
	st   *status.Status
}

func (e *serverError) GRPCStatus() *status.Status { return e.st }

func (e *serverError) Error() string {
	msg := e.st.Message()
	switch e.st.Code() {
	case codes.Unavailable:
		return fmt.Sprintf("cannot reach the server at %s: %s (is `berth server` or `berth dev` running?)", e.addr, dialReason(msg))
	case codes.DeadlineExceeded:
		return fmt.Sprintf("the server at %s did not answer in time: %s", e.addr, msg)
	case codes.Unauthenticated:
		return fmt.Sprintf("the server at %s refused our credentials: %s (is --config the config of this cluster, and --token or $BERTH_TOKEN a valid token?)", e.addr, msg)
	case codes.PermissionDenied:
		// The server says who we are and what the call needs.
		return "permission denied: " + msg
	case codes.Unimplemented:
		return fmt.Sprintf("the server at %s does not support this: %s (is it an older version? see `berth version`)", e.addr, msg)
	default:
		return msg
	}
}

// connectionLevel reports whether the error is about reaching the server at
// all rather than about the call, so the call's context adds nothing.
func (e *serverError) connectionLevel() bool {
	switch e.st.Code() {
	case codes.Unavailable, codes.Unauthenticated, codes.PermissionDenied:
		return true
	}
	return false
}

// dialReason shortens gRPC's transport error text, such as
// `connection error: desc = "transport: Error while dialing: dial tcp
// 127.0.0.1:1: connect: connection refused"`, to its last reason
// ("connection refused"); the address is already said.
func dialReason(msg string) string {
	const marker = "Error while dialing: "
	i := strings.Index(msg, marker)
	if i < 0 {
		return msg
	}
	reason := strings.TrimSuffix(msg[i+len(marker):], `"`)
	if strings.HasPrefix(reason, "dial ") {
		if j := strings.LastIndex(reason, ": "); j >= 0 {
			reason = reason[j+2:]
		}
	}
	return reason
}

// userMessage is what Execute prints for err: a connection-level server
// error alone, anything else as wrapped.
func userMessage(err error) string {
	var se *serverError
	if errors.As(err, &se) && se.connectionLevel() {
		return se.Error()
	}
	return err.Error()
}

// humanize turns a gRPC status error into a serverError; other errors,
// io.EOF included, pass through unchanged.
func humanize(addr string, err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	var se *serverError
	if errors.As(err, &se) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	return &serverError{addr: addr, st: st}
}

func unaryErrors(addr string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return humanize(addr, invoker(ctx, method, req, reply, cc, opts...))
	}
}

func streamErrors(addr string) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		s, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return nil, humanize(addr, err)
		}
		return &humanStream{ClientStream: s, addr: addr}, nil
	}
}

// humanStream words the errors of a stream's sends and receives.
type humanStream struct {
	grpc.ClientStream
	addr string
}

func (s *humanStream) SendMsg(m any) error { return humanize(s.addr, s.ClientStream.SendMsg(m)) }
func (s *humanStream) RecvMsg(m any) error { return humanize(s.addr, s.ClientStream.RecvMsg(m)) }

// isCanceled reports whether err is the end of a call the user stopped
// (Ctrl-C), which is not a failure worth printing.
func isCanceled(ctx context.Context, err error) bool {
	if ctx.Err() == nil {
		return false
	}
	return errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled
}
