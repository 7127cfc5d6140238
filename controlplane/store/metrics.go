package store

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of a transaction, the label of its duration.
const (
	txnCommitted = "committed"
	txnConflict  = "conflict"
	txnError     = "error"
	// txnFenced is a write of a leader whose term had ended.
	txnFenced = "fenced"
)

func newTxnHistogram() *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "berth_etcd_txn_duration_seconds",
		Help: "Time etcd took to answer the store's guarded write transactions, by result (committed, conflict, fenced, error).",
		// From a fast disk's fsync (about a millisecond) to a struggling
		// cluster's seconds.
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	}, []string{"result"})
}

// Collectors are the store's metrics, to register with the process's
// registry.
func (s *Store) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.txns}
}

func (s *Store) observeTxn(start time.Time, result string) {
	s.txns.WithLabelValues(result).Observe(time.Since(start).Seconds())
}
