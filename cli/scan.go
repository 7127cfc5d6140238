package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// scanFormat is scan's -o: a table of findings, the whole result as
// JSON, or the SBOM as CycloneDX or SPDX.
type scanFormat string

func (f *scanFormat) String() string { return string(*f) }
func (f *scanFormat) Type() string   { return "format" }

func (f *scanFormat) Set(s string) error {
	switch s {
	case "table", "json", "cyclonedx", "spdx":
		*f = scanFormat(s)
		return nil
	}
	return fmt.Errorf("unknown output format %q: use table, json, cyclonedx or spdx", s)
}

// severityWord names a finding's severity: low, medium, high, critical,
// or unknown.
func severityWord(s berthv1.Severity) string {
	return cmp.Or(enumWord(s.String(), "SEVERITY_"), "unknown")
}

func newScanCommand(o *rootOptions) *cobra.Command {
	var (
		node  string
		fresh bool
		out   = scanFormat("table")
	)
	cmd := &cobra.Command{
		Use:   "scan IMAGE [--node N] [-o table|json|cyclonedx|spdx]",
		Short: "List an image's packages and their known vulnerabilities",
		Long: `Make the SBOM of IMAGE on a node (pulled there first when missing) and match
it against the cluster's vulnerability database (berth vulndb import). The
result is stored under the image's digest: scanning the same digest again
reuses its SBOM (--fresh makes a new one), and a newer database rematches
it without reading the image again.

-o table lists the findings (id, aliases, package, installed and fixed
version, severity); json prints the whole result with the SBOM;
cyclonedx and spdx print the SBOM in those formats (CycloneDX with the
findings as vulnerabilities).

The command fails (exit status 1) when the namespace's scan gate
(berth cluster settings --block-severity) would refuse the image.`,
		Example: `  berth scan registry.example.com/web:1.4
  berth scan web:dev --node node-2 -o json
  berth scan web:dev -o cyclonedx > web.cdx.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				resp, err := c.Scan(ctx, &berthv1.ScanRequest{Namespace: c.namespace, Image: args[0], Node: node, Fresh: fresh})
				if err != nil {
					return fmt.Errorf("scan %s: %w", args[0], err)
				}
				w := cmd.OutOrStdout()
				r := resp.GetResult()
				switch out {
				case "json":
					var b []byte
					if b, err = (protojson.MarshalOptions{Multiline: true, Indent: "  "}).Marshal(r); err == nil {
						_, err = fmt.Fprintln(w, string(b))
					}
				case "cyclonedx":
					err = writeCycloneDX(w, r)
				case "spdx":
					err = writeSPDX(w, r)
				default:
					printFindings(w, r)
				}
				if err != nil {
					return err
				}
				if len(resp.Blocked) > 0 {
					return fmt.Errorf("scan %s: %s at or above %s, which the scan gate of namespace %s refuses; an apply of this image is refused unless the service accepts them (x-berth: {allow-vulnerabilities: [...]})", args[0], plural(len(resp.Blocked), "finding"), resp.Gate, c.namespace)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "node (name or id) that reads the image; default: one that holds it")
	cmd.Flags().BoolVar(&fresh, "fresh", false, "make a new SBOM even when one is stored for the image's digest")
	cmd.Flags().VarP(&out, "output", "o", "output format: table, json, cyclonedx or spdx")
	return cmd
}

// printFindings writes a result's summary line and its findings table.
func printFindings(w io.Writer, r *berthv1.ScanResult) {
	sb := r.GetSbom()
	osName := cmp.Or(sb.GetOsName(), strings.TrimSpace(sb.GetOsId()+" "+sb.GetOsVersion()), "unknown OS")
	fmt.Fprintf(w, "%s %s: %s, %d packages, %s (database %d)\n", firstImage(r), r.Digest, osName, len(sb.GetPackages()), findingCounts(r.Findings), r.DbGeneration)
	if r.DbGeneration == 0 {
		fmt.Fprintln(w, "no vulnerability database is imported: load one with `berth vulndb import FILE.zip|DIR`")
	}
	if len(r.Findings) == 0 {
		return
	}
	fmt.Fprintln(w)
	printList(w, formatTable, nil, func(tw io.Writer) {
		fmt.Fprintln(tw, "SEVERITY\tID\tALIASES\tPACKAGE\tINSTALLED\tFIXED")
		for _, f := range r.Findings {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", severityWord(f.Severity), f.Id, cmp.Or(strings.Join(f.Aliases, ","), "-"), f.Package, f.InstalledVersion, cmp.Or(f.FixedVersion, "-"))
		}
	})
}

// findingCounts says "3 findings (1 critical, 2 high)" or "no findings".
func findingCounts(fs []*berthv1.ScanFinding) string {
	if len(fs) == 0 {
		return "no findings"
	}
	counts := map[berthv1.Severity]int{}
	for _, f := range fs {
		counts[f.Severity]++
	}
	var parts []string
	for _, s := range []berthv1.Severity{berthv1.Severity_SEVERITY_CRITICAL, berthv1.Severity_SEVERITY_HIGH, berthv1.Severity_SEVERITY_MEDIUM, berthv1.Severity_SEVERITY_LOW, berthv1.Severity_SEVERITY_UNSPECIFIED} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], severityWord(s)))
		}
	}
	noun := "findings"
	if len(fs) == 1 {
		noun = "finding"
	}
	return fmt.Sprintf("%d %s (%s)", len(fs), noun, strings.Join(parts, ", "))
}

// summaryCounts says "2 findings (1 critical, 1 high)" of a summary.
func summaryCounts(sum *berthv1.ScanSummary) string {
	total := int64(0)
	var parts []string
	for _, name := range []string{"critical", "high", "medium", "low", "unknown"} {
		if n := sum.GetCounts()[name]; n > 0 {
			total += n
			parts = append(parts, fmt.Sprintf("%d %s", n, name))
		}
	}
	if total == 0 {
		return "no findings"
	}
	return plural(int(total), "finding") + " (" + strings.Join(parts, ", ") + ")"
}

// describeFindingsLimit is how many findings describe lists; scan lists
// them all.
const describeFindingsLimit = 10

// printServiceScan adds what the scan of a service's image found to
// describe: a line, and its worst findings. A server without scanning
// (or a caller not allowed to read results) leaves both out.
func printServiceScan(ctx context.Context, w io.Writer, c *cluster, spec *berthv1.ServiceSpec) {
	image := cmp.Or(spec.GetImageDigest(), spec.GetImage())
	if image == "" {
		return
	}
	r, err := c.GetScanResult(ctx, &berthv1.GetScanResultRequest{Namespace: c.namespace, Image: image})
	if status.Code(err) == codes.NotFound {
		fields(w, "Vulnerabilities", "not scanned (berth scan "+spec.GetImage()+")")
		return
	}
	if err != nil {
		return
	}
	fields(w, "Vulnerabilities", fmt.Sprintf("%s in %d packages (database %d, %s)", findingCounts(r.Findings), len(r.GetSbom().GetPackages()), r.DbGeneration, r.Digest))
	if len(r.Findings) == 0 {
		return
	}
	shown := r.Findings[:min(len(r.Findings), describeFindingsLimit)]
	section(w, "Findings", len(shown), func(tw io.Writer) {
		fmt.Fprintln(tw, "  SEVERITY\tID\tPACKAGE\tINSTALLED\tFIXED")
		for _, f := range shown {
			id := f.Id
			if len(f.Aliases) > 0 {
				id = f.Aliases[0]
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", severityWord(f.Severity), id, f.Package, f.InstalledVersion, cmp.Or(f.FixedVersion, "-"))
		}
		if len(r.Findings) > len(shown) {
			fmt.Fprintf(tw, "  ... %d more: berth scan %s\n", len(r.Findings)-len(shown), spec.GetImage())
		}
	})
}

// describeImage shows the stored scan of an image (a reference or a
// digest), rematched against the current database.
func describeImage(cmd *cobra.Command, o *rootOptions, ref string) error {
	return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
		r, err := c.GetScanResult(ctx, &berthv1.GetScanResultRequest{Namespace: c.namespace, Image: ref})
		if err != nil {
			return fmt.Errorf("describe image %s: %w", ref, err)
		}
		w := cmd.OutOrStdout()
		sb := r.GetSbom()
		fields(w,
			"Image", strings.Join(r.Images, ", "),
			"Digest", r.Digest,
			"OS", cmp.Or(sb.GetOsName(), strings.TrimSpace(sb.GetOsId()+" "+sb.GetOsVersion())),
			"Packages", fmt.Sprintf("%d (read on node %s by %s, %s)", len(sb.GetPackages()), sb.GetNode(), sb.GetGenerator(), rfc3339(sb.GetCreatedAt())),
			"Vulnerabilities", fmt.Sprintf("%s (database %d, matched %s)", findingCounts(r.Findings), r.DbGeneration, rfc3339(r.GetMatchedAt())),
		)
		section(w, "Findings", len(r.Findings), func(tw io.Writer) {
			fmt.Fprintln(tw, "  SEVERITY\tID\tALIASES\tPACKAGE\tINSTALLED\tFIXED")
			for _, f := range r.Findings {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", severityWord(f.Severity), f.Id, cmp.Or(strings.Join(f.Aliases, ","), "-"), f.Package, f.InstalledVersion, cmp.Or(f.FixedVersion, "-"))
			}
		})
		return nil
	})
}
