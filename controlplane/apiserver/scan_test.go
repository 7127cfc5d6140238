package apiserver

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// importStream is a client stream of an import, as the CLI sends it.
type importStream struct {
	grpc.ServerStream
	ctx  context.Context
	msgs []*berthv1.ImportVulnDBRequest
	got  *berthv1.VulnDBStatus
}

func (s *importStream) Context() context.Context { return s.ctx }

func (s *importStream) Recv() (*berthv1.ImportVulnDBRequest, error) {
	if len(s.msgs) == 0 {
		return nil, io.EOF
	}
	m := s.msgs[0]
	s.msgs = s.msgs[1:]
	return m, nil
}

func (s *importStream) SendAndClose(st *berthv1.VulnDBStatus) error { s.got = st; return nil }

// importRecords imports records (entry name → JSON) in batches of 500.
func importRecords(t *testing.T, s *Server, source string, names []string, records map[string]string) (*berthv1.VulnDBStatus, error) {
	t.Helper()
	st := &importStream{ctx: context.Background(), msgs: []*berthv1.ImportVulnDBRequest{{Header: &berthv1.ImportVulnDBHeader{Source: source}}}}
	var batch []*berthv1.VulnDBEntry
	for _, n := range names {
		batch = append(batch, &berthv1.VulnDBEntry{Name: n, Data: []byte(records[n])})
		if len(batch) == 500 {
			st.msgs = append(st.msgs, &berthv1.ImportVulnDBRequest{Entries: batch})
			batch = nil
		}
	}
	st.msgs = append(st.msgs, &berthv1.ImportVulnDBRequest{Entries: batch})
	err := s.ImportVulnDB(st)
	return st.got, err
}

func osvRecord(id, eco, name, fixed, severity string) string {
	return fmt.Sprintf(`{"id":%q,"modified":"2024-05-01T00:00:00Z","aliases":["CVE-%s"],"summary":"%s","affected":[{"package":{"ecosystem":%q,"name":%q},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":%q}]}]}],"database_specific":{"severity":%q}}`,
		id, id, strings.Repeat("a summary that takes room ", 20), eco, name, fixed, severity)
}

// TestImportVulnDBOfTenThousandRecords imports a database larger than
// one etcd request, reads it back as another server would, and replaces
// it with a second import, whose chunks replace the first's.
func TestImportVulnDBOfTenThousandRecords(t *testing.T) {
	s := newServer(t)
	records := map[string]string{}
	var names []string
	for i := range 10000 {
		n := fmt.Sprintf("DSA-%d-1.json", i)
		names = append(names, n)
		records[n] = osvRecord(fmt.Sprintf("DSA-%d-1", i), "Debian:12", fmt.Sprintf("pkg%d", i%700), "2.0-1", "high")
	}
	st, err := importRecords(t, s, "big.zip", names, records)
	if err != nil {
		t.Fatal(err)
	}
	if st.Records != 10000 || st.Generation != 1 || st.Chunks < 2 || st.Ecosystems["Debian"] != 10000 {
		t.Fatalf("status = %v, want 10000 Debian records in several chunks, generation 1", st)
	}
	t.Logf("10,000 records: %d chunks, %d bytes stored", st.Chunks, st.StoredBytes)

	// Another server reads it from the store.
	other := New(Config{Store: s.cfg.Store, Cache: s.cfg.Cache, Log: s.log})
	db, err := other.currentVulnDB(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if db.Records() != 10000 || db.Generation != 1 {
		t.Fatalf("read back %d records of generation %d", db.Records(), db.Generation)
	}
	first := st.ImportId

	st, err = importRecords(t, s, "small.zip", names[:3], records)
	if err != nil {
		t.Fatal(err)
	}
	if st.Generation != 2 || st.Records != 3 {
		t.Fatalf("second import: %v", st)
	}
	old, err := s.cfg.Store.VulnDBChunks(context.Background(), first)
	if err != nil || len(old) != 0 {
		t.Errorf("the first import's chunks: %d left (%v), want none", len(old), err)
	}
	if db, err = other.currentVulnDB(context.Background()); err != nil || db.Records() != 3 {
		t.Errorf("after the second import the other server reads %v records (%v), want 3", db.Records(), err)
	}
}

// TestImportVulnDBRefusesWrongFormat refuses a database with one bad
// entry, naming the file and the entry, and writes nothing.
func TestImportVulnDBRefusesWrongFormat(t *testing.T) {
	s := newServer(t)
	good := osvRecord("DSA-1-1", "Debian:12", "openssl", "3.0.13-1", "high")
	for _, tt := range []struct {
		name    string
		records map[string]string
		words   []string
	}{
		{"not json", map[string]string{"a.json": good, "b.json": "<html>"}, []string{"db.zip: entry b.json is not a JSON object"}},
		{"no id", map[string]string{"a.json": good, "b.json": `{"summary":"x"}`}, []string{"db.zip: entry b.json has no \"id\""}},
		{"bad range", map[string]string{"a.json": good, "b.json": `{"id":"X","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"x"},"ranges":[{"type":"SEMVER","events":[]}]}]}`},
			[]string{"entry b.json record X: affected[0].ranges[0] has no events"}},
		{"duplicate", map[string]string{"a.json": good, "b.json": good}, []string{"entry b.json holds record DSA-1-1, which entry a.json holds too"}},
		{"empty", map[string]string{}, []string{"db.zip holds no OSV records"}},
	} {
		before := etcdRevision(t, s)
		names := []string{}
		for _, n := range []string{"a.json", "b.json"} {
			if _, ok := tt.records[n]; ok {
				names = append(names, n)
			}
		}
		_, err := importRecords(t, s, "db.zip", names, tt.records)
		wantCode(t, tt.name, err, codes.InvalidArgument, append(tt.words, "nothing was imported")...)
		if etcdRevision(t, s) != before {
			t.Errorf("%s: a refused import wrote to the store", tt.name)
		}
	}
	if _, err := s.GetVulnDBStatus(context.Background(), &berthv1.GetVulnDBStatusRequest{}); status.Code(err) != codes.NotFound {
		t.Errorf("status after refused imports: %v, want NotFound", err)
	}
}

// TestScanGate checks the gate on apply with a stored SBOM: the cluster's
// gate, a namespace's own, allowed findings, and a database imported
// later rematching what is stored.
func TestScanGate(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	const digest = "sha256:0123456789012345678901234567890123456789012345678901234567890123"
	if err := s.cfg.Store.PutScanResult(ctx, &berthv1.ScanResult{Meta: &berthv1.Meta{}, Digest: digest, Images: []string{"docker.io/library/web:1"},
		Sbom: &berthv1.Sbom{Digest: digest, Packages: []*berthv1.SbomPackage{
			{Name: "openssl", BinaryName: "libssl3", Version: "3.0.11-1~deb12u1", Ecosystem: "Debian:12"},
			{Name: "zlib", Version: "1:1.2.13.dfsg-1", Ecosystem: "Debian:12"},
		}}}); err != nil {
		t.Fatal(err)
	}
	apply := func(allowed ...string) error {
		web := svc("web", "web:1", 1)
		web.Spec.ImageDigest, web.Spec.AllowVulnerabilities = digest, allowed
		_, err := s.Apply(ctx, &berthv1.ApplyRequest{App: "shop", Services: []*berthv1.Service{web}, DryRun: true})
		return err
	}
	if err := apply(); err != nil {
		t.Fatalf("apply without a gate: %v", err)
	}
	if _, err := s.UpdateSettings(ctx, &berthv1.UpdateSettingsRequest{Settings: &berthv1.ClusterSettings{BlockSeverity: "HIGH"}}); err != nil {
		t.Fatal(err)
	}
	if got := s.cfg.Cache.Settings().GetBlockSeverity(); got != "high" {
		t.Fatalf("stored block severity %q, want high", got)
	}
	wantCode(t, "gate without a database", apply(), codes.FailedPrecondition, "no vulnerability database was imported")

	records := map[string]string{
		"1.json": osvRecord("DSA-1-1", "Debian:12", "openssl", "3.0.13-1~deb12u1", "high"),
		"2.json": osvRecord("DSA-2-1", "Debian:12", "zlib", "1:1.2.13.dfsg-1+deb12u1", "low"),
		"3.json": osvRecord("DSA-3-1", "Debian:12", "zlib", "1:1.2.13.dfsg-1+deb12u1", "critical"),
	}
	st, err := importRecords(t, s, "debian.zip", []string{"1.json", "2.json", "3.json"}, records)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rescanned != 1 {
		t.Errorf("import rematched %d results, want 1", st.Rescanned)
	}
	wantCode(t, "cluster gate", apply(), codes.InvalidArgument, `service "web"`, "image web:1 ("+digest+") has 2 findings at or above high (the scan gate of the cluster)",
		"critical CVE-DSA-3-1 (DSA-3-1) in zlib 1:1.2.13.dfsg-1, fixed in 1:1.2.13.dfsg-1+deb12u1", "high CVE-DSA-1-1 (DSA-1-1) in openssl")
	wantCode(t, "one allowed", apply("cve-dsa-3-1"), codes.InvalidArgument, "1 finding at or above high", "DSA-1-1")
	if err := apply("CVE-DSA-3-1", "DSA-1-1"); err != nil {
		t.Errorf("apply with both allowed: %v", err)
	}

	// A namespace's own gate wins; "none" lets everything through.
	block := "critical"
	if _, err := s.UpdateNamespace(ctx, &berthv1.UpdateNamespaceRequest{Name: "default", BlockSeverity: &block}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "namespace gate", apply(), codes.InvalidArgument, "1 finding at or above critical (the scan gate of namespace default)")
	block = "none"
	if _, err := s.UpdateNamespace(ctx, &berthv1.UpdateNamespaceRequest{Name: "default", BlockSeverity: &block}); err != nil {
		t.Fatal(err)
	}
	if err := apply(); err != nil {
		t.Errorf("apply in a namespace without a gate: %v", err)
	}
	block = "severe"
	_, err = s.UpdateNamespace(ctx, &berthv1.UpdateNamespaceRequest{Name: "default", BlockSeverity: &block})
	wantCode(t, "bad namespace severity", err, codes.InvalidArgument, `"severe" is not a severity`)
	_, err = s.UpdateSettings(ctx, &berthv1.UpdateSettingsRequest{Settings: &berthv1.ClusterSettings{BlockSeverity: "urgent"}})
	wantCode(t, "bad cluster severity", err, codes.InvalidArgument, `"urgent" is not a severity; use low, medium, high, critical, or none`)

	// ScanImage, for automated builds, answers with the same words.
	block = ""
	if _, err := s.UpdateNamespace(ctx, &berthv1.UpdateNamespaceRequest{Name: "default", BlockSeverity: &block}); err != nil {
		t.Fatal(err)
	}
	err = s.ScanImage(ctx, "default", "web:1", digest, "")
	wantCode(t, "ScanImage", err, codes.FailedPrecondition, "image docker.io/library/web:1 ("+digest+") has 2 findings at or above high")

	got, err := s.GetScanResult(ctx, &berthv1.GetScanResultRequest{Image: digest})
	if err != nil || len(got.Findings) != 3 || got.DbGeneration != 1 {
		t.Errorf("stored result: %v (%v), want 3 findings of database 1", got, err)
	}
	list, err := s.ListScanResults(ctx, &berthv1.ListScanResultsRequest{})
	if err != nil || len(list.Results) != 1 || list.Results[0].Counts["critical"] != 1 || list.Results[0].Counts["high"] != 1 || list.Results[0].Counts["low"] != 1 {
		t.Errorf("summaries: %v (%v)", list, err)
	}
}
