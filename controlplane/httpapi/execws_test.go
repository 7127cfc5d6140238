package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// echoExec is an Exec call that names its task, echoes input as output,
// answers a resize with its size as text, and exits with code 3 on the
// input "exit". It refuses a start for the task "forbidden" as the access
// table would.
type echoExec struct {
	grpc.ClientStream
	ctx  context.Context
	out  chan *berthv1.ExecResponse
	done chan struct{}
	once sync.Once
}

func (e *echoExec) Send(req *berthv1.ExecRequest) error {
	var resp *berthv1.ExecResponse
	switch p := req.GetPart().(type) {
	case *berthv1.ExecRequest_Start:
		resp = &berthv1.ExecResponse{Part: &berthv1.ExecResponse_TaskId{TaskId: p.Start.GetTaskId()}}
	case *berthv1.ExecRequest_Stdin:
		resp = &berthv1.ExecResponse{Part: &berthv1.ExecResponse_Stdout{Stdout: p.Stdin}}
		if string(p.Stdin) == "exit" {
			resp = &berthv1.ExecResponse{Part: &berthv1.ExecResponse_ExitCode{ExitCode: 3}}
		}
	case *berthv1.ExecRequest_Resize:
		resp = &berthv1.ExecResponse{Part: &berthv1.ExecResponse_Stderr{Stderr: []byte(strings.Repeat("#", int(p.Resize.GetWidth())))}}
	default:
		return nil
	}
	select {
	case e.out <- resp:
		return nil
	case <-e.ctx.Done():
		return e.ctx.Err()
	}
}

func (e *echoExec) Recv() (*berthv1.ExecResponse, error) {
	select {
	case r := <-e.out:
		return r, nil
	case <-e.ctx.Done():
		return nil, status.FromContextError(e.ctx.Err()).Err()
	}
}

func (e *echoExec) CloseSend() error { return nil }

// execCluster answers Exec with an echoExec and remembers the caller
// metadata of the last call.
type execCluster struct {
	berthv1.ClusterServiceClient
	mu            sync.Mutex
	authorization []string
}

func (c *execCluster) Exec(ctx context.Context, _ ...grpc.CallOption) (grpc.BidiStreamingClient[berthv1.ExecRequest, berthv1.ExecResponse], error) {
	md, _ := metadata.FromOutgoingContext(ctx)
	c.mu.Lock()
	c.authorization = md.Get("authorization")
	c.mu.Unlock()
	return &echoExec{ctx: ctx, out: make(chan *berthv1.ExecResponse, 4), done: make(chan struct{})}, nil
}

func TestExecWebSocket(t *testing.T) {
	cluster := &execCluster{}
	h, err := New(Config{Client: cluster, Tokens: fakeTokens{}, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + ExecPath
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	dial := func(t *testing.T, origin string) *websocket.Conn {
		t.Helper()
		hdr := http.Header{}
		if origin != "" {
			hdr.Set("Origin", origin)
		}
		conn, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: hdr})
		if err != nil {
			t.Fatalf("dialing %s: %v", wsURL, err)
		}
		t.Cleanup(func() { conn.CloseNow() })
		return conn
	}
	read := func(t *testing.T, conn *websocket.Conn) (websocket.MessageType, string) {
		t.Helper()
		typ, b, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("reading: %v", err)
		}
		return typ, string(b)
	}
	write := func(t *testing.T, conn *websocket.Conn, typ websocket.MessageType, s string) {
		t.Helper()
		if err := conn.Write(ctx, typ, []byte(s)); err != nil {
			t.Fatalf("writing %q: %v", s, err)
		}
	}
	hello := func(token, task string) string {
		b, _ := json.Marshal(map[string]any{"token": token, "start": map[string]any{"namespace": "default", "taskId": task, "command": []string{"sh"}, "tty": true, "stdin": true}})
		return string(b)
	}

	t.Run("a session", func(t *testing.T) {
		conn := dial(t, srv.URL)
		write(t, conn, websocket.MessageText, hello("good", "t1"))
		if typ, got := read(t, conn); typ != websocket.MessageText || got != `{"taskId":"t1"}` {
			t.Fatalf("first message %v %q, want the task ID as text", typ, got)
		}
		write(t, conn, websocket.MessageBinary, "echo hi\r")
		if typ, got := read(t, conn); typ != websocket.MessageBinary || got != "echo hi\r" {
			t.Fatalf("output %v %q, want the input echoed as binary", typ, got)
		}
		write(t, conn, websocket.MessageText, `{"resize": {"width": 5, "height": 2}}`)
		if _, got := read(t, conn); got != "#####" {
			t.Fatalf("after a resize to 5 columns the fake wrote %q, want 5 #", got)
		}
		write(t, conn, websocket.MessageBinary, "exit")
		var resp berthv1.ExecResponse
		if typ, got := read(t, conn); typ != websocket.MessageText || protojson.Unmarshal([]byte(got), &resp) != nil || resp.GetExitCode() != 3 {
			t.Fatalf("last message %v %q, want the exit code 3", typ, got)
		}
		if _, _, err := conn.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
			t.Fatalf("after the exit code: %v, want a normal close", err)
		}
		cluster.mu.Lock()
		defer cluster.mu.Unlock()
		if len(cluster.authorization) != 1 || cluster.authorization[0] != "Bearer good" {
			t.Errorf("the call carried authorization %q, want the token", cluster.authorization)
		}
	})

	refused := []struct {
		name, first string
		wantCode    codes.Code
		wantMessage string
	}{
		{"a bad token", hello("revoked", "t1"), codes.Unauthenticated, "revoked"},
		{"no token", hello("", "t1"), codes.Unauthenticated, "berth token create"},
		{"not a start", `{"token": "good"}`, codes.InvalidArgument, "first message"},
		{"a bad start", `{"token": "good", "start": {"tty": "yes"}}`, codes.InvalidArgument, "not an ExecStart"},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			conn := dial(t, "")
			write(t, conn, websocket.MessageText, c.first)
			_, got := read(t, conn)
			var e execError
			if err := json.Unmarshal([]byte(got), &e); err != nil || e.Error.Code != c.wantCode || !strings.Contains(e.Error.Message, c.wantMessage) {
				t.Fatalf("answer %q, want code %v with %q", got, c.wantCode, c.wantMessage)
			}
			if _, _, err := conn.Read(ctx); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
				t.Fatalf("after the error: %v, want a policy-violation close", err)
			}
		})
	}

	t.Run("another site's page", func(t *testing.T) {
		hdr := http.Header{"Origin": {"https://evil.example"}}
		_, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: hdr})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("dialing from another origin: %v (response %v), want 403", err, resp)
		}
	})

	t.Run("not a WebSocket", func(t *testing.T) {
		resp, err := srv.Client().Post(srv.URL+ExecPath, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("POST %s = %d, want 405", ExecPath, resp.StatusCode)
		}
	})
}
