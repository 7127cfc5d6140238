package apiserver

import (
	"context"
	"fmt"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestScanCollector reports the findings of the images services run, one
// series per severity, and nothing for images no service runs.
func TestScanCollector(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	digest := func(i int) string { return fmt.Sprintf("sha256:%064d", i) }
	for i := range 3 {
		r := &berthv1.ScanResult{Meta: &berthv1.Meta{}, Digest: digest(i), Images: []string{fmt.Sprintf("docker.io/library/app%d:1", i)}, DbGeneration: 1,
			Findings: []*berthv1.ScanFinding{{Id: "A", Severity: berthv1.Severity_SEVERITY_HIGH}, {Id: "B", Severity: berthv1.Severity_SEVERITY_HIGH}, {Id: "C"}}}
		if err := s.cfg.Store.PutScanResult(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	web := svc("web", "app1:1", 1)
	web.Spec.ImageDigest = digest(1)
	if _, err := s.Apply(ctx, &berthv1.ApplyRequest{App: "shop", Services: []*berthv1.Service{web}}); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`
# HELP berth_image_vulnerability_findings Vulnerability findings of the images services run, by severity (low, medium, high, critical, unknown), per image digest.
# TYPE berth_image_vulnerability_findings gauge
berth_image_vulnerability_findings{digest="%[1]s",image="docker.io/library/app1:1",severity="critical"} 0
berth_image_vulnerability_findings{digest="%[1]s",image="docker.io/library/app1:1",severity="high"} 2
berth_image_vulnerability_findings{digest="%[1]s",image="docker.io/library/app1:1",severity="low"} 0
berth_image_vulnerability_findings{digest="%[1]s",image="docker.io/library/app1:1",severity="medium"} 0
berth_image_vulnerability_findings{digest="%[1]s",image="docker.io/library/app1:1",severity="unknown"} 1
`, digest(1))
	if err := testutil.CollectAndCompare(s.ScanCollector(), strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
