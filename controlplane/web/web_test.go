package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/berthproject/berth/controlplane/apiserver"
)

// fakeTokens accepts one token.
type fakeTokens struct{ good string }

func (f fakeTokens) CheckAPIToken(_ context.Context, bearer string) (*berthv1.APIToken, error) {
	if bearer != f.good {
		return nil, fmt.Errorf("token %q: %w", bearer, apiserver.ErrAPITokenInvalid)
	}
	return &berthv1.APIToken{}, nil
}

// serve mounts the handler as the server does and returns a test server.
func serve(t *testing.T) *httptest.Server {
	t.Helper()
	h := New(Config{Tokens: fakeTokens{good: "berth_good"}})
	mux := http.NewServeMux()
	mux.Handle(Prefix, h)
	mux.Handle(strings.TrimSuffix(Prefix, "/"), h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestAssets(t *testing.T) {
	srv := serve(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tests := []struct {
		method, path string
		wantStatus   int
		wantType     string
		wantBody     string
	}{
		{"GET", "/ui/", http.StatusOK, "text/html; charset=utf-8", `<script src="app.js"`},
		{"GET", "/ui/index.html", http.StatusOK, "text/html; charset=utf-8", "<title>Berth</title>"},
		{"GET", "/ui/app.js", http.StatusOK, "text/javascript; charset=utf-8", "sessionStorage"},
		{"GET", "/ui/style.css", http.StatusOK, "text/css; charset=utf-8", "body"},
		{"HEAD", "/ui/app.js", http.StatusOK, "text/javascript; charset=utf-8", ""},
		{"GET", "/ui", http.StatusMovedPermanently, "", ""},
		{"GET", "/ui/missing.js", http.StatusNotFound, "", ""},
		{"GET", "/ui/assets/", http.StatusNotFound, "", ""},
		{"GET", "/ui/assets/app.js", http.StatusNotFound, "", ""},
		{"GET", "/ui/vendor/xterm.js", http.StatusOK, "text/javascript; charset=utf-8", "Terminal"},
		{"GET", "/ui/vendor/xterm.css", http.StatusOK, "text/css; charset=utf-8", ".xterm"},
		{"GET", "/ui/vendor/", http.StatusNotFound, "", ""},
		{"GET", "/ui/vendor/x/y.js", http.StatusNotFound, "", ""},
		{"GET", "/ui/vendor/..%2fweb.go", http.StatusNotFound, "", ""},
		{"GET", "/ui/..%2fweb.go", http.StatusNotFound, "", ""},
		{"POST", "/ui/", http.StatusMethodNotAllowed, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %q", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantType != "" && resp.Header.Get("Content-Type") != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", resp.Header.Get("Content-Type"), tt.wantType)
			}
			if !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("body does not contain %q", tt.wantBody)
			}
			if tt.wantStatus == http.StatusOK && resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", resp.Header.Get("X-Content-Type-Options"))
			}
			if tt.wantStatus == http.StatusMovedPermanently && resp.Header.Get("Location") != Prefix {
				t.Errorf("Location = %q, want %s", resp.Header.Get("Location"), Prefix)
			}
		})
	}
}

func TestConvertCompose(t *testing.T) {
	srv := serve(t)
	const file = "name: shop\nservices:\n  web:\n    image: busybox\n    deploy:\n      replicas: 2\n"
	const stateful = "name: shop\nservices:\n  db:\n    image: busybox\n    volumes: [data:/data]\n    configs: [conf]\n" +
		"volumes:\n  data: {}\nconfigs:\n  conf:\n    content: hello\n"
	body := func(app, content string) string {
		b, err := json.Marshal(composeRequest{App: app, Compose: content})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name, method, bearer, body string
		wantStatus                 int
		wantBody                   string
	}{
		{"converts", "POST", "berth_good", body("", file), http.StatusOK, `"app":"shop"`},
		{"app from the request", "POST", "berth_good", body("blog", file), http.StatusOK, `"app":"blog"`},
		{"replicas as Apply takes them", "POST", "berth_good", body("", file), http.StatusOK, `"replicas":"2"`},
		{"the app's volumes", "POST", "berth_good", body("", stateful), http.StatusOK, `"volumes":[{"name":"shop_data","key":"data"}]`},
		{"the app's configs", "POST", "berth_good", body("", stateful), http.StatusOK, `"name":"shop_conf"`},
		{"the app's networks", "POST", "berth_good", body("", stateful), http.StatusOK, `"networks":[{"name":"shop_default"`},
		{"no token", "POST", "", body("", file), http.StatusUnauthorized, "berth token create"},
		{"bad token", "POST", "berth_bad", body("", file), http.StatusUnauthorized, "not valid"},
		{"invalid file", "POST", "berth_good", body("", "services:\n  web:\n    ports: [x]\n"), http.StatusBadRequest, "compose.yaml"},
		{"no file of the server", "POST", "berth_good", body("", "services:\n  web:\n    image: busybox\n    env_file: /etc/passwd\n"), http.StatusBadRequest, `compose.yaml:4: service \"web\": env_file: a Compose file pasted into the dashboard cannot read files of the server`},
		{"no environment of the server", "POST", "berth_good", body("", "services:\n  web:\n    image: busybox\n    environment: [\"H=${HOME}\"]\n"), http.StatusOK, `"env":["H="]`},
		{"not JSON", "POST", "berth_good", "services:", http.StatusBadRequest, "the body is not"},
		{"GET", "GET", "berth_good", "", http.StatusMethodNotAllowed, "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+"/ui/compose", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tt.bearer)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(got), tt.wantBody) {
				t.Fatalf("POST /ui/compose = %d %s; want %d containing %q", resp.StatusCode, got, tt.wantStatus, tt.wantBody)
			}
		})
	}
}
