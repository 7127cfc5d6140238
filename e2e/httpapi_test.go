package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/api/clientconfig"
)

// TestHTTPAPI calls the cluster API over HTTP/JSON as a script would: with
// an API token from `berth token create`, verifying the server against the
// cluster CA, and with the admin client certificate instead.
func TestHTTPAPI(t *testing.T) {
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c := newCluster(t, withServerArgs("--http-listen", httpAddr))
	c.startAgent("alpha")
	base := "https://" + httpAddr

	cfg, err := clientconfig.Load(c.configPath)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(cfg.CA)) {
		t.Fatalf("no CA certificate in %s", c.configPath)
	}
	noCert := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	t.Cleanup(noCert.CloseIdleConnections)
	adminCert, err := tls.X509KeyPair([]byte(cfg.Certificate), []byte(cfg.Key))
	if err != nil {
		t.Fatal(err)
	}
	withCert := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{adminCert}}}}
	t.Cleanup(withCert.CloseIdleConnections)

	token := strings.TrimSpace(c.mustBerth("token", "create", "e2e", "-q"))
	if !strings.HasPrefix(token, "berth_") {
		t.Fatalf("berth token create -q printed %q, want a berth_ token", token)
	}
	if out := c.mustBerth("token", "ls"); !strings.Contains(out, "e2e") || strings.Contains(out, token) {
		t.Fatalf("berth token ls:\n%s\nwant the e2e token listed without its secret", out)
	}

	listNodes := func(client *http.Client, bearer string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, base+"/berth.v1.ClusterService/ListNodes", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		return httpDo(t, client, req)
	}
	nodeNames := func(body string) []string {
		t.Helper()
		var resp struct {
			Nodes []struct {
				Name string `json:"name"`
			} `json:"nodes"`
		}
		if err := json.Unmarshal([]byte(body), &resp); err != nil {
			t.Fatalf("ListNodes answered %s: %v", body, err)
		}
		var names []string
		for _, n := range resp.Nodes {
			names = append(names, n.Name)
		}
		return names
	}

	if code, body := listNodes(noCert, token); code != http.StatusOK || fmt.Sprint(nodeNames(body)) != "[alpha]" {
		t.Fatalf("ListNodes with the token = %d %s; want 200 with node alpha", code, body)
	}
	if code, body := listNodes(noCert, ""); code != http.StatusUnauthorized || !strings.Contains(body, "berth token create") {
		t.Fatalf("ListNodes without credentials = %d %s; want 401 saying how to get a token", code, body)
	}
	if code, body := listNodes(withCert, ""); code != http.StatusOK || fmt.Sprint(nodeNames(body)) != "[alpha]" {
		t.Fatalf("ListNodes with the admin certificate = %d %s; want 200 with node alpha", code, body)
	}

	req, err := http.NewRequest(http.MethodGet, base+"/openapi.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	code, doc := httpDo(t, noCert, req)
	if code != http.StatusOK {
		t.Fatalf("GET /openapi.json = %d %s", code, doc)
	}
	for _, method := range []string{"ListNodes", "Apply", "CreateAPIToken"} {
		if !strings.Contains(doc, `"/berth.v1.ClusterService/`+method+`"`) {
			t.Errorf("the OpenAPI document does not name ClusterService/%s", method)
		}
	}

	// A server stream arrives as newline-delimited JSON, one message a line
	// as it happens: the first line comes while the stream stays open.
	req, err = http.NewRequest(http.MethodPost, base+"/berth.v1.ClusterService/WatchEvents", strings.NewReader(`{"nodeId": ""}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := noCert.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || !strings.HasPrefix(line, `{"result":`) {
		t.Fatalf("WatchEvents = %d, first line %q (%v); want 200 and a {\"result\": ...} line", resp.StatusCode, line, err)
	}

	c.mustBerth("token", "revoke", "e2e")
	if code, body := listNodes(noCert, token); code != http.StatusUnauthorized || !strings.Contains(body, "revoked") {
		t.Fatalf("ListNodes with a revoked token = %d %s; want 401", code, body)
	}
}

// httpDo sends req and returns the status and body.
func httpDo(t *testing.T, client *http.Client, req *http.Request) (int, string) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL, err)
	}
	return resp.StatusCode, string(body)
}
