package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/coder/websocket"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// ExecPath is the WebSocket endpoint that runs a command in a task's
// container for the dashboard's terminal: a browser cannot hold a gRPC
// bidirectional stream, so this bridges one WebSocket to one Exec call.
//
// The conversation, after the upgrade:
//   - the client's first message is text, {"token": "<API token>",
//     "start": <ExecStart as JSON>}; the token may be left out over a
//     connection with a client certificate of the cluster;
//   - then each binary message from the client is standard input, and each
//     text message an ExecRequest as JSON ({"resize": {"width": 80,
//     "height": 24}} or {"stdinClosed": true});
//   - each binary message from the server is output, and each text message
//     an ExecResponse as JSON ({"taskId": ...} first, {"exitCode": N}
//     last) or {"error": {"code": N, "message": ...}} when the call fails.
//
// The token is sent in a message rather than in the URL so that it is not
// written to access logs or browser history. The call then takes the JSON
// API's path: the credential is checked as for any request, and the Exec
// call is made over the gateway's gRPC connection with the same caller
// metadata, so the access table and the audit log decide and record it as
// for `berth exec`. Browsers send an Origin header with every WebSocket;
// one of another host is refused, so a page of another site cannot open
// a terminal with a user's client certificate.
const ExecPath = "/exec/ws"

// execReadLimit bounds one message from the client.
const execReadLimit = 1 << 20

// execStartTimeout bounds the wait for the first message.
const execStartTimeout = 10 * time.Second

// execHello is the client's first message.
type execHello struct {
	Token string          `json:"token"`
	Start json.RawMessage `json:"start"`
}

// execError is the last text message of a call that failed.
type execError struct {
	Error struct {
		Code    codes.Code `json:"code"`
		Message string     `json:"message"`
	} `json:"error"`
}

// serveExec upgrades the request and bridges it to an Exec call.
func (h *Handler) serveExec(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeError(w, http.StatusMethodNotAllowed, codes.Unimplemented, ExecPath+" is a WebSocket: open it with GET and Upgrade: websocket")
		return
	}
	// Accept refuses an Origin whose host is not the request's.
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		h.cfg.Log.Info("exec WebSocket refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	defer conn.CloseNow()
	// A paste into the terminal comes as one message.
	conn.SetReadLimit(execReadLimit)
	// Cancelling a read closes the WebSocket: the input goroutine is
	// stopped only once the last message is written.
	ctx, cancel := context.WithCancel(r.Context())
	var input sync.WaitGroup
	defer input.Wait()
	defer cancel()
	code, msg := h.bridgeExec(ctx, conn, r, &input)
	if code != codes.OK {
		var e execError
		e.Error.Code, e.Error.Message = code, msg
		if b, err := json.Marshal(e); err == nil {
			conn.Write(ctx, websocket.MessageText, b)
		}
		conn.Close(websocket.StatusPolicyViolation, truncate(msg, 120))
		return
	}
	conn.Close(websocket.StatusNormalClosure, "")
}

// bridgeExec authenticates the first message, starts the call and copies
// both ways until the command exits or either side goes away. It returns
// codes.OK when the command ran to its end (its exit code was sent), or
// the code and message to end the WebSocket with.
func (h *Handler) bridgeExec(ctx context.Context, conn *websocket.Conn, r *http.Request, input *sync.WaitGroup) (codes.Code, string) {
	helloCtx, cancelHello := context.WithTimeout(ctx, execStartTimeout)
	typ, data, err := conn.Read(helloCtx)
	cancelHello()
	if err != nil {
		return codes.InvalidArgument, fmt.Sprintf("no start message within %s: %v", execStartTimeout, err)
	}
	var hello execHello
	start := &berthv1.ExecStart{}
	if typ != websocket.MessageText || json.Unmarshal(data, &hello) != nil || len(hello.Start) == 0 {
		return codes.InvalidArgument, `the first message must be text: {"token": "...", "start": {"taskId": "...", "command": ["sh"]}}`
	}
	if err := protojson.Unmarshal(hello.Start, start); err != nil {
		return codes.InvalidArgument, "start is not an ExecStart: " + err.Error()
	}
	auth := ""
	if hello.Token != "" {
		auth = "Bearer " + hello.Token
	}
	fwd, st, code, msg := h.authenticateCredential(ctx, auth, r.TLS)
	if st != http.StatusOK {
		return code, msg
	}
	fwd.Set(ForwardedForMetadata, r.RemoteAddr)
	stream, err := h.cfg.Client.Exec(metadata.NewOutgoingContext(ctx, fwd))
	if err != nil {
		return status.Code(err), status.Convert(err).Message()
	}
	if err := stream.Send(&berthv1.ExecRequest{Part: &berthv1.ExecRequest_Start{Start: start}}); err != nil {
		// Why the server ended the call comes with Recv.
		_, err = stream.Recv()
		return status.Code(err), status.Convert(err).Message()
	}

	// Input: the WebSocket's messages, until it closes or the call ends.
	input.Add(1)
	go func() {
		defer input.Done()
		for {
			typ, data, err := conn.Read(ctx)
			if err != nil {
				stream.CloseSend()
				return
			}
			req := &berthv1.ExecRequest{Part: &berthv1.ExecRequest_Stdin{Stdin: data}}
			if typ == websocket.MessageText {
				req = &berthv1.ExecRequest{}
				if err := protojson.Unmarshal(data, req); err != nil || req.GetStart() != nil {
					continue // not a resize or an end of input: ignored
				}
			}
			if err := stream.Send(req); err != nil {
				return
			}
		}
	}()

	// Output, on this goroutine: the call's end decides the WebSocket's.
	for {
		resp, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return codes.OK, "" // the client went away
			}
			return status.Code(err), status.Convert(err).Message()
		}
		var werr error
		switch p := resp.GetPart().(type) {
		case *berthv1.ExecResponse_Stdout:
			werr = conn.Write(ctx, websocket.MessageBinary, p.Stdout)
		case *berthv1.ExecResponse_Stderr:
			werr = conn.Write(ctx, websocket.MessageBinary, p.Stderr)
		default:
			b, err := protojson.Marshal(resp)
			if err != nil {
				return codes.Internal, err.Error()
			}
			werr = conn.Write(ctx, websocket.MessageText, b)
			if _, exited := p.(*berthv1.ExecResponse_ExitCode); exited && werr == nil {
				return codes.OK, ""
			}
		}
		if werr != nil {
			if errors.Is(werr, context.Canceled) {
				return codes.OK, ""
			}
			return codes.Unavailable, werr.Error()
		}
	}
}

// truncate shortens s to at most n bytes: a WebSocket close reason must
// fit in a control frame.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
