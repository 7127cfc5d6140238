package cli

import (
	"archive/zip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

func newVulnDBCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vulndb",
		Short: "Load and show the vulnerability database scans match against",
	}
	cmd.AddCommand(newVulnDBImportCommand(o), newVulnDBStatusCommand(o))
	requireSubcommand(cmd)
	return cmd
}

// vulnDBBatchBytes bounds the records sent in one message.
const vulnDBBatchBytes = 1 << 20

func newVulnDBImportCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE.zip|DIR",
		Short: "Replace the vulnerability database with OSV records",
		Long: `Load OSV records (https://ossf.github.io/osv-schema/) as the cluster's
vulnerability database, replacing the one before: a zip as OSV exports
them per ecosystem (one JSON record per file, e.g. Debian's, Alpine's or
Go's all.zip from OSV's bucket), or a folder of such JSON files (read
recursively; files not ending in .json are skipped). Every record is
checked first: one in the wrong format refuses the import, naming the
entry, and the database stays as it was. Scans need no network: they
match against what was imported. Stored scan results are rematched
against the new database.`,
		Example: `  berth vulndb import Debian.zip
  berth vulndb import ./osv-records/`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src := args[0]
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				stream, err := c.ImportVulnDB(ctx)
				if err != nil {
					return fmt.Errorf("vulndb import: %w", err)
				}
				if err := stream.Send(&berthv1.ImportVulnDBRequest{Header: &berthv1.ImportVulnDBHeader{Source: filepath.Base(filepath.Clean(src))}}); err != nil {
					return fmt.Errorf("vulndb import: %w", err)
				}
				var batch []*berthv1.VulnDBEntry
				size := 0
				flush := func() error {
					if len(batch) == 0 {
						return nil
					}
					err := stream.Send(&berthv1.ImportVulnDBRequest{Entries: batch})
					batch, size = nil, 0
					return err
				}
				err = readOSVEntries(src, func(name string, data []byte) error {
					if size+len(data) > vulnDBBatchBytes {
						if err := flush(); err != nil {
							return err
						}
					}
					batch = append(batch, &berthv1.VulnDBEntry{Name: name, Data: data})
					size += len(data) + len(name)
					return nil
				})
				if err == nil {
					err = flush()
				}
				if err == io.EOF {
					// The server ended the stream early (a refused record):
					// its answer says why.
					err = nil
				}
				if err != nil {
					stream.CloseSend()
					return fmt.Errorf("vulndb import %s: %w", src, err)
				}
				st, err := stream.CloseAndRecv()
				if err != nil {
					return fmt.Errorf("vulndb import: %w", err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "imported %d records (%s) from %s as database %d; %d stored scan results rematched\n",
					st.Records, ecosystemText(st.Ecosystems), st.Source, st.Generation, st.Rescanned)
				return nil
			})
		},
	}
}

// readOSVEntries calls each with every record file of src: the files of
// a zip, or the .json files under a folder (or one .json file).
func readOSVEntries(src string, each func(name string, data []byte) error) error {
	info, err := os.Stat(src)
	if err != nil {
		return err
	}
	if info.IsDir() {
		return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != src && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() || !strings.HasSuffix(d.Name(), ".json") {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(src, path)
			return each(rel, data)
		})
	}
	if strings.HasSuffix(src, ".json") {
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		return each(filepath.Base(src), data)
	}
	zr, err := zip.OpenReader(src)
	if err != nil {
		return fmt.Errorf("%s is not a zip (%v): import an OSV export (a zip of JSON records) or a folder of them", src, err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		if f.FileInfo().IsDir() {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("entry %s: %w", f.Name, err)
		}
		data, err := io.ReadAll(io.LimitReader(rc, 64<<20))
		rc.Close()
		if err != nil {
			return fmt.Errorf("entry %s: %w", f.Name, err)
		}
		if err := each(f.Name, data); err != nil {
			return err
		}
	}
	return nil
}

// ecosystemText is "Debian 120, Go 4".
func ecosystemText(m map[string]int64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+" "+strconv.FormatInt(m[k], 10))
	}
	if len(parts) == 0 {
		return "no ecosystem"
	}
	return strings.Join(parts, ", ")
}

// vulnDBView is the database status as `vulndb status` shows it.
type vulnDBView struct {
	Generation     int64            `json:"generation"`
	Records        int64            `json:"records"`
	Ecosystems     map[string]int64 `json:"ecosystems"`
	Source         string           `json:"source"`
	ImportedAt     time.Time        `json:"importedAt"`
	NewestModified time.Time        `json:"newestModified"`
	StoredBytes    int64            `json:"storedBytes"`
}

func newVulnDBStatusCommand(o *rootOptions) *cobra.Command {
	var out *outputFormat
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the vulnerability database: records, ecosystems, when imported",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withCluster(cmd, func(ctx context.Context, c *cluster) error {
				st, err := c.GetVulnDBStatus(ctx, &berthv1.GetVulnDBStatusRequest{})
				if err != nil {
					return fmt.Errorf("vulndb status: %w", err)
				}
				v := vulnDBView{Generation: st.Generation, Records: st.Records, Ecosystems: st.Ecosystems, Source: st.Source,
					ImportedAt: st.GetImportedAt().AsTime(), NewestModified: st.GetNewestModified().AsTime(), StoredBytes: st.StoredBytes}
				return printList(cmd.OutOrStdout(), *out, v, func(w io.Writer) {
					fields(w, "Generation", strconv.FormatInt(v.Generation, 10), "Records", strconv.FormatInt(v.Records, 10),
						"Ecosystems", ecosystemText(v.Ecosystems), "Source", v.Source,
						"Imported", v.ImportedAt.UTC().Format(time.RFC3339), "Newest record", v.NewestModified.UTC().Format(time.RFC3339),
						"Stored", fmt.Sprintf("%d bytes (compressed)", v.StoredBytes))
				})
			})
		},
	}
	out = addOutputFlag(cmd)
	return cmd
}
