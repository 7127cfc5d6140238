package openapi_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/berthproject/berth/api/openapi"
)

// TestDocumentIsFresh regenerates the protos into a temporary directory and
// compares the OpenAPI document with the committed one, so a proto change
// without `make proto` fails CI.
func TestDocumentIsFresh(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Skip("protoc is not installed (hack/setup-host.sh installs it)")
	}
	out := t.TempDir()
	if b, err := exec.Command("bash", "../../hack/proto.sh", out).CombinedOutput(); err != nil {
		t.Fatalf("hack/proto.sh: %v\n%s", err, b)
	}
	want, err := os.ReadFile(filepath.Join(out, "api", "openapi", "berth.swagger.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(openapi.Document, want) {
		t.Errorf("berth.swagger.json differs from what the protos generate: it is stale: run make proto")
	}
}

func TestDocumentNamesClusterService(t *testing.T) {
	var doc struct {
		Paths map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(openapi.Document, &doc); err != nil {
		t.Fatalf("the OpenAPI document is not JSON: %v", err)
	}
	for _, p := range []string{"/berth.v1.ClusterService/ListNodes", "/berth.v1.ClusterService/Apply", "/berth.v1.ClusterService/CreateAPIToken"} {
		if _, ok := doc.Paths[p]; !ok {
			t.Errorf("the OpenAPI document has no path %s", p)
		}
	}
}
