package web

import (
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// TestServiceNetworksCell runs the dashboard's Networks cell of a service
// in Node.js against a minimal DOM: each network with the service's
// virtual IP and the addresses of its tasks that have not ended, ready or
// not.
func TestServiceNetworksCell(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("no node binary to run the dashboard's script")
	}
	out, err := exec.Command(node, "testdata/networks_check.js", "assets/api.js", "assets/tables.js").CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	want := "shop_front VIP 10.1.0.3 → 10.1.0.5(ready), 10.1.0.8(not ready), 10.1.0.6(not ready)\n" +
		"shop_back no VIP no endpoints\n"
	if string(out) != want {
		t.Fatalf("cells:\n%s\nwant:\n%s", out, want)
	}
}

func TestServicesTableHasNetworks(t *testing.T) {
	srv := serve(t)
	resp, err := http.Get(srv.URL + "/ui/index.html")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), "<th>Networks</th>") {
		t.Fatalf("the services table has no Networks column")
	}
}
