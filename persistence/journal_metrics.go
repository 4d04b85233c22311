package persistence

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// journalMetrics are the journal's Prometheus collectors.
type journalMetrics struct {
	batchSize    prometheus.Histogram
	batchSeconds prometheus.Histogram
	errors       *prometheus.CounterVec
}

func newJournalMetrics(reg prometheus.Registerer) *journalMetrics {
	m := &journalMetrics{
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "journal_batch_size",
			Help:    "Events written per journal batch (one transaction).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13), // 1 .. 4096
		}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "journal_batch_seconds",
			Help:    "Time to write one journal batch, commit included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5 ms .. 4 s
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "journal_append_errors_total",
			Help: "Journal append calls that failed, by reason (fenced, unavailable, overloaded, invalid).",
		}, []string{"reason"}),
	}
	if reg != nil {
		m.batchSize = register(reg, m.batchSize)
		m.batchSeconds = register(reg, m.batchSeconds)
		m.errors = register(reg, m.errors)
	}
	return m
}

// register registers c, or returns the collector already registered under
// the same name (a second Journal on one registry shares the series). On any
// other registration error c stays unregistered but usable.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}
