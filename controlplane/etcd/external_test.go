package etcd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckEndpoints(t *testing.T) {
	ca := ClientTLS{CAFile: "ca.pem"}
	mtls := ClientTLS{CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "k.pem"}
	cases := []struct {
		name      string
		endpoints []string
		tls       ClientTLS
		secure    bool
		// refused, when set, is a part of the refusal.
		refused string
	}{
		{name: "plain loopback", endpoints: []string{"http://127.0.0.1:2379", "http://localhost:2379", "http://[::1]:2379"}},
		{name: "no scheme on loopback", endpoints: []string{"127.0.0.1:2379"}},
		{name: "unix socket", endpoints: []string{"unix:///var/lib/berth/etcd/etcd.sock"}},
		{name: "https", endpoints: []string{"https://10.0.0.5:2379", "https://etcd.example:2379"}, tls: mtls, secure: true},
		{name: "https with system roots", endpoints: []string{"https://10.0.0.5:2379"}, secure: true},
		{name: "no scheme with TLS options", endpoints: []string{"10.0.0.5:2379"}, tls: ca, secure: true},
		{name: "plain to another machine", endpoints: []string{"http://192.0.2.1:2379"}, refused: "plain HTTP to a machine other than this one"},
		{name: "plain to a name", endpoints: []string{"http://etcd.example:2379"}, refused: "use https:// with --etcd-cacert"},
		{name: "no scheme to another machine", endpoints: []string{"192.0.2.1:2379"}, refused: "plain HTTP"},
		{name: "mixed", endpoints: []string{"https://10.0.0.5:2379", "http://127.0.0.1:2379"}, tls: ca, refused: "mixes plain"},
		{name: "TLS options with plain", endpoints: []string{"http://127.0.0.1:2379"}, tls: ca, refused: "apply to https:// endpoints"},
		{name: "certificate without key", endpoints: []string{"https://10.0.0.5:2379"}, tls: ClientTLS{CertFile: "c.pem"}, refused: "--etcd-cert and --etcd-key go together"},
		{name: "key without certificate", endpoints: []string{"https://10.0.0.5:2379"}, tls: ClientTLS{KeyFile: "k.pem"}, refused: "--etcd-cert and --etcd-key go together"},
		{name: "other scheme", endpoints: []string{"ftp://10.0.0.5:2379"}, refused: `scheme "ftp"`},
		{name: "no host", endpoints: []string{"https://"}, refused: "names no host"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			secure, err := CheckEndpoints(tc.endpoints, tc.tls)
			if tc.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("CheckEndpoints(%v) = %v, want a refusal containing %q", tc.endpoints, err, tc.refused)
				}
				return
			}
			if err != nil {
				t.Fatalf("CheckEndpoints(%v): %v", tc.endpoints, err)
			}
			if secure != tc.secure {
				t.Fatalf("CheckEndpoints(%v) says TLS %v, want %v", tc.endpoints, secure, tc.secure)
			}
		})
	}
}

// TestClientTLSErrorsNameTheFlag: a TLS file that is missing or wrong is
// reported with the flag that named it.
func TestClientTLSErrorsNameTheFlag(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		tls  ClientTLS
		flag string
	}{
		{ClientTLS{CAFile: filepath.Join(dir, "missing.pem")}, "--etcd-cacert"},
		{ClientTLS{CAFile: junk}, "--etcd-cacert"},
		{ClientTLS{CertFile: junk, KeyFile: junk}, "--etcd-cert"},
	}
	for _, tc := range cases {
		if _, err := tc.tls.config(); err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("config(%+v) = %v, want an error naming %s", tc.tls, err, tc.flag)
		}
	}
}
