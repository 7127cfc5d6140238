package httpapi

import (
	"context"
	"net/http"

	"google.golang.org/protobuf/proto"
)

// openStream sends a server stream's HTTP headers as soon as the gRPC
// server has accepted the call, before its first message. The gateway
// itself writes them with the first message only, so a client of a quiet
// stream (a Watch of a cluster where nothing changes) could not tell an
// open stream from a hanging request: the dashboard said "not connected"
// while it was. The gateway calls each forward-response option once with a
// nil message when a stream starts, after the call's own headers arrived
// (past authentication and authorisation), and with the message for each
// unary answer and each streamed one.
func openStream(_ context.Context, w http.ResponseWriter, m proto.Message) error {
	if m != nil {
		return nil
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	return http.NewResponseController(w).Flush()
}

// headerOnce is a ResponseWriter that keeps the first status written: a
// stream whose headers openStream sent and that then fails before its
// first message is answered with an {"error": ...} line under that
// status, where the gateway would try to write its error's status too.
type headerOnce struct {
	http.ResponseWriter
	wrote bool
}

func (w *headerOnce) WriteHeader(status int) {
	if w.wrote {
		return
	}
	w.wrote = true
	w.ResponseWriter.WriteHeader(status)
}

func (w *headerOnce) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer, to
// flush.
func (w *headerOnce) Unwrap() http.ResponseWriter { return w.ResponseWriter }
