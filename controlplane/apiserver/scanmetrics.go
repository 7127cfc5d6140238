package apiserver

import (
	"context"
	"slices"
	"time"

	"github.com/berthproject/berth/controlplane/store"
	"github.com/berthproject/berth/controlplane/vulndb"
	"github.com/prometheus/client_golang/prometheus"
)

// maxScanSeries bounds the digests the findings metric reports: the
// images services run now, at most this many.
const maxScanSeries = 100

// scanCollectTimeout bounds the store reads of one scrape.
const scanCollectTimeout = 5 * time.Second

var findingsDesc = prometheus.NewDesc("berth_image_vulnerability_findings",
	"Vulnerability findings of the images services run, by severity (low, medium, high, critical, unknown), per image digest.",
	[]string{"digest", "image", "severity"}, nil)

// scanCollector reports the findings of the images the cluster's
// services are pinned to, read from the stored scan results at scrape
// time: the series follow what runs, so they stay few.
type scanCollector struct{ s *Server }

// ScanCollector returns the collector of the findings metric.
func (s *Server) ScanCollector() prometheus.Collector { return scanCollector{s} }

func (c scanCollector) Describe(ch chan<- *prometheus.Desc) { ch <- findingsDesc }

func (c scanCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scanCollectTimeout)
	defer cancel()
	var digests []string
	for _, svc := range c.s.cfg.Cache.Services(store.ServicesPrefix) {
		if d := svc.GetSpec().GetImageDigest(); d != "" && !slices.Contains(digests, d) {
			digests = append(digests, d)
		}
	}
	slices.Sort(digests)
	for _, d := range digests[:min(len(digests), maxScanSeries)] {
		r, err := c.s.cfg.Store.ScanResult(ctx, d)
		if err != nil || r == nil {
			continue
		}
		counts := map[string]float64{}
		for _, f := range r.Findings {
			counts[vulndb.SeverityName(f.Severity)]++
		}
		image := ""
		if len(r.Images) > 0 {
			image = r.Images[0]
		}
		for _, sev := range append(slices.Clone(vulndb.SeverityNames), "unknown") {
			ch <- prometheus.MustNewConstMetric(findingsDesc, prometheus.GaugeValue, counts[sev], d, image, sev)
		}
	}
}
