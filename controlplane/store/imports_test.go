package store

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// etcdImporters are the only packages of the module whose code (tests
// aside) may import etcd's Go packages: the store owns etcd.
var etcdImporters = []string{
	"github.com/berthproject/berth/controlplane/store",
	// The embedded member and the connection to an external cluster.
	"github.com/berthproject/berth/controlplane/etcd",
	// The server: it holds the client it hands the store, and runs the
	// leader election and the servers' registry on etcd's sessions.
	"github.com/berthproject/berth/controlplane",
	// The scale harness reads etcd's own status (database size,
	// revision) to report what a run cost; it is no part of the product.
	"github.com/berthproject/berth/e2e/scale",
}

// TestOnlyTheStoreImportsEtcd fails when a package not in etcdImporters
// imports any of etcd's packages (client, API types, server).
func TestOnlyTheStoreImportsEtcd(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("this test lists the module's imports with the go command: %v", err)
	}
	out, err := exec.Command(gobin, "list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "github.com/berthproject/berth/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	checked := 0
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		pkg, imports := fields[0], fields[1:]
		checked++
		if slices.Contains(etcdImporters, pkg) {
			continue
		}
		for _, imp := range imports {
			if strings.HasPrefix(imp, "go.etcd.io/etcd/") {
				t.Errorf("%s imports %s: only controlplane/store may use etcd; add the typed helper it needs there", pkg, imp)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("go list named only %d packages; the check saw too little:\n%s", checked, out)
	}
}
