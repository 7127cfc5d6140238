package cli

import "testing"

func TestDialReason(t *testing.T) {
	tests := []struct{ in, want string }{
		{`connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`, "connection refused"},
		{`connection error: desc = "transport: authentication handshake failed: tls: bad certificate"`, `connection error: desc = "transport: authentication handshake failed: tls: bad certificate"`},
		{"server is shutting down", "server is shutting down"},
	}
	for _, tt := range tests {
		if got := dialReason(tt.in); got != tt.want {
			t.Errorf("dialReason(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
