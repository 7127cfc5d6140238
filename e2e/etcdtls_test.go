package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// caKey is where the cluster CA lives in etcd (store.CAKey).
const caKey = "/berth/pki/ca"

// TestEmbeddedEtcdIsPrivate: the embedded etcd holds the cluster's state,
// the CA among it, so no TCP port of the server may speak etcd (it used
// to serve etcd unauthenticated on a loopback port, which any local user
// or build step could read); only the server's user reaches it, on a
// 0600 unix socket in the data dir. Clients are no longer told where it
// is.
func TestEmbeddedEtcdIsPrivate(t *testing.T) {
	c := newCluster(t)

	socket := filepath.Join(c.dir, "server", "etcd", "etcd.sock")
	fi, err := os.Stat(socket)
	if err != nil {
		t.Fatalf("the embedded etcd's socket: %v", err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %s, want a socket with mode 0600", socket, fi.Mode())
	}
	// The way the test reads etcd works where etcd is: over the socket,
	// as the server's user (root), the CA is there.
	if err := readEtcd("unix://"+socket, caKey); err != nil {
		t.Fatalf("reading %s over the server's own socket: %v", caKey, err)
	}

	ports := listeningTCPPorts(t, c.server.cmd.Process.Pid)
	if len(ports) == 0 {
		t.Fatal("found no TCP port of the server; the check below would prove nothing")
	}
	t.Logf("the server listens on TCP ports %v", ports)
	for _, port := range ports {
		ep := fmt.Sprintf("http://127.0.0.1:%d", port)
		if err := readEtcd(ep, caKey); err == nil {
			t.Errorf("the server's TCP port %d serves etcd: %s read at %s without credentials", port, caKey, ep)
		}
	}

	if out := c.mustBerth("version"); strings.Contains(out, "etcd") {
		t.Errorf("berth version still tells clients where etcd is:\n%s", out)
	}
}

// readEtcd reads key from the etcd at endpoint with no credentials.
func readEtcd(endpoint, key string) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("%s is not there", key)
	}
	return nil
}

// listeningTCPPorts returns the TCP ports process pid listens on, from
// /proc: its socket descriptors that /proc/<pid>/net/tcp{,6} list in state
// LISTEN.
func listeningTCPPorts(t *testing.T, pid int) []int {
	t.Helper()
	inodes := map[string]bool{}
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	var ports []int
	for _, table := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx_queue:rx_queue tr:when retrnsmt uid timeout inode
			f := strings.Fields(sc.Text())
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			port, err := strconv.ParseUint(hexPort, 16, 16)
			if err != nil {
				t.Fatalf("%s: local address %q: %v", table, f[1], err)
			}
			ports = append(ports, int(port))
		}
	}
	return ports
}

// TestExternalEtcdTLS runs the server on Debian's etcd serving clients over
// TLS and requiring client certificates, with the certificates given by
// --etcd-cacert, --etcd-cert and --etcd-key; without the client
// certificate the server does not start.
func TestExternalEtcdTLS(t *testing.T) {
	etcdBin := "/usr/bin/etcd"
	if _, err := os.Stat(etcdBin); err != nil {
		t.Fatalf("etcd is not installed (hack/setup-host.sh installs etcd-server): %v", err)
	}
	dir := t.TempDir()
	pki := makeEtcdPKI(t, dir)
	client := fmt.Sprintf("https://127.0.0.1:%d", freePort(t))
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	e := startProc(t, "etcd", []string{"ETCD_UNSUPPORTED_ARCH="}, etcdBin,
		"--name", "e2e", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--cert-file", pki.serverCert, "--key-file", pki.serverKey,
		"--client-cert-auth", "--trusted-ca-file", pki.ca,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "e2e="+peer)
	e.waitOutput(t, "ready to serve client requests", 60*time.Second)

	// Without a client certificate etcd refuses the server, and the
	// server says which flags to check.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, berthBin, "server", "--data-dir", filepath.Join(dir, "refused"),
		"--config", filepath.Join(dir, "refused-config"), "--listen", "127.0.0.1:0", "--metrics-addr", "",
		"--etcd-endpoints", client, "--etcd-cacert", pki.ca).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--etcd-cert") {
		t.Fatalf("a server without a client certificate: %v, want a refusal naming --etcd-cert:\n%s", err, out)
	}
	t.Logf("refused as it should be:\n%s", out)

	c := newCluster(t, withEtcd(client), withServerArgs("--etcd-cacert", pki.ca, "--etcd-cert", pki.clientCert, "--etcd-key", pki.clientKey))
	c.startAgent("alpha")
	c.importImage()
	c.mustBerth("apply", "-f", c.writeFile("compose.yaml", sleepCompose), "-p", "tls")
	c.waitRunning("tls/sleeper", 2, 60*time.Second)
	c.mustBerth("delete", "tls")
}

// TestEtcdEndpointChecks: what --etcd-endpoints and the TLS flags refuse
// before the server starts anything (nothing is dialled: 192.0.2.1 is
// TEST-NET-1).
func TestEtcdEndpointChecks(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"plain HTTP off loopback", []string{"--etcd-endpoints", "http://192.0.2.1:2379"}, "plain HTTP to a machine other than this one"},
		{"TLS flags without endpoints", []string{"--etcd-cacert", filepath.Join(dir, "ca.pem")}, "give its endpoints with --etcd-endpoints"},
		{"certificate without key", []string{"--etcd-endpoints", "https://192.0.2.1:2379", "--etcd-cert", filepath.Join(dir, "c.pem")}, "--etcd-cert and --etcd-key go together"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			dataDir := filepath.Join(dir, strconv.Itoa(i))
			args := append([]string{"server", "--data-dir", dataDir, "--config", filepath.Join(dir, "config"),
				"--listen", "127.0.0.1:0", "--metrics-addr", ""}, tc.args...)
			out, err := exec.CommandContext(ctx, berthBin, args...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("berth %s: %v, want a refusal containing %q:\n%s", strings.Join(args, " "), err, tc.want, out)
			}
			if _, err := os.Stat(filepath.Join(dataDir, "etcd")); err == nil {
				t.Fatal("the refused server started an embedded etcd in its data dir")
			}
		})
	}
}

// etcdPKI is the files of a CA, an etcd serving certificate for 127.0.0.1
// and a client certificate, all signed by the CA.
type etcdPKI struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func makeEtcdPKI(t *testing.T, dir string) etcdPKI {
	t.Helper()
	caPriv := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e etcd CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caPriv.PublicKey, caPriv)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := etcdPKI{ca: filepath.Join(dir, "ca.pem")}
	writePEM(t, p.ca, "CERTIFICATE", caDER)
	issue := func(serial int64, name string, usage x509.ExtKeyUsage, ips []net.IP) (string, string) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caPriv)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		certPath, keyPath := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		writePEM(t, certPath, "CERTIFICATE", der)
		writePEM(t, keyPath, "PRIVATE KEY", keyDER)
		return certPath, keyPath
	}
	p.serverCert, p.serverKey = issue(2, "etcd", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	p.clientCert, p.clientKey = issue(3, "berth", x509.ExtKeyUsageClientAuth, nil)
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
