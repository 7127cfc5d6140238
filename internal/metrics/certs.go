package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CertExpiry is the gauge berth_cert_expiry_seconds of one certificate:
// the seconds until the certificate a process uses now (after renewals)
// expires, read at scrape time from notAfter. role is "server" or "node",
// id the holder.
func CertExpiry(role, id string, notAfter func() time.Time) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "berth_cert_expiry_seconds",
		Help:        "Seconds until the certificate in use expires; it is renewed at two thirds of its lifetime.",
		ConstLabels: prometheus.Labels{"role": role, "id": id},
	}, func() float64 { return time.Until(notAfter()).Seconds() })
}
