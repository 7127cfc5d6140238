// Package validation checks Berth's API objects before they are stored, and
// fills in their defaults. The CLI runs it to report problems early; the
// server runs it again on every Apply, so a client cannot skip it.
package validation

import (
	"errors"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// FieldError is one problem, located as precisely as known.
type FieldError struct {
	// File is the Compose file the problem is in, when known.
	File string
	// Line is the line in File, when known (0 otherwise).
	Line int
	// Service is the service the problem is in, when it is in one.
	Service string
	// Field is the path of the field inside the service (or the request),
	// such as "ports[0].published" or "deploy.replicas".
	Field string
	// Reason says what is wrong and, where it helps, how to fix it.
	Reason string
}

// Error formats the problem as
// `compose.yaml:7: service "web": ports[0].published: <reason>`, leaving out
// the parts that are not known.
func (e FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":")
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	if e.Service != "" {
		b.WriteString("service ")
		b.WriteString(strconv.Quote(e.Service))
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Errors is every problem found in one piece of input. It is an error
// itself; use Err to get a nil error when there is no problem.
type Errors []FieldError

// Error lists the problems, one a line.
func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, fe := range e {
		lines[i] = fe.Error()
	}
	return strings.Join(lines, "\n")
}

// Err returns e as an error, or nil when e holds no problem. Returning
// Errors directly would give a non-nil error interface holding an empty
// slice.
func (e Errors) Err() error {
	if len(e) == 0 {
		return nil
	}
	return e
}

// WithFile returns a copy of e with File set on the problems that have none.
func (e Errors) WithFile(file string) Errors {
	out := make(Errors, len(e))
	for i, fe := range e {
		if fe.File == "" {
			fe.File = file
		}
		out[i] = fe
	}
	return out
}

// GRPCStatus converts e into an InvalidArgument status carrying every
// problem as a BadRequest field violation, so clients in any language see
// them all. The violation's field is "service/field" (or just "field" for
// problems outside a service); File and Line do not cross the wire: the
// server never sees files. gRPC servers call this method themselves when a
// handler returns Errors.
func (e Errors) GRPCStatus() *status.Status {
	msg := "invalid request"
	if len(e) > 0 {
		msg = e.Error()
	}
	st := status.New(codes.InvalidArgument, msg)
	br := &errdetails.BadRequest{FieldViolations: make([]*errdetails.BadRequest_FieldViolation, 0, len(e))}
	for _, fe := range e {
		field := fe.Field
		if fe.Service != "" {
			field = fe.Service + "/" + fe.Field
		}
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field:       field,
			Description: fe.Reason,
		})
	}
	detailed, err := st.WithDetails(br)
	if err != nil {
		// Only a marshalling failure gets here; the message still carries
		// every problem.
		return st
	}
	return detailed
}

// FromError recovers Errors from err: either Errors itself (possibly
// wrapped) or an InvalidArgument gRPC status made by GRPCStatus. It reports
// false for any other error.
func FromError(err error) (Errors, bool) {
	if err == nil {
		return nil, false
	}
	var errs Errors
	if errors.As(err, &errs) {
		return errs, true
	}
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		return nil, false
	}
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		out := make(Errors, 0, len(br.GetFieldViolations()))
		for _, v := range br.GetFieldViolations() {
			fe := FieldError{Field: v.GetField(), Reason: v.GetDescription()}
			// Service names cannot contain '/', and field paths never do.
			if service, field, found := strings.Cut(fe.Field, "/"); found {
				fe.Service, fe.Field = service, field
			}
			out = append(out, fe)
		}
		return out, true
	}
	return nil, false
}
