package http

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestOpsQuantileInterpolatesLikePrometheus(t *testing.T) {
	h := opsHist{bounds: []float64{0.1, 0.2, 0.4}, counts: []float64{50, 90, 100}, count: 100}
	require.InDelta(t, 0.1, *h.quantile(0.5), 1e-9)  // the 50th of 50 in the first bucket
	require.InDelta(t, 0.15, *h.quantile(0.7), 1e-9) // 20 of 40 into (0.1, 0.2]
	require.InDelta(t, 0.2+0.2*(99-90)/10.0, *h.quantile(0.99), 1e-9)
	over := opsHist{bounds: []float64{0.1}, counts: []float64{0}, count: 5}
	require.InDelta(t, 0.1, *over.quantile(0.99), 1e-9, "in +Inf: the largest bound")
	require.Nil(t, opsHist{}.quantile(0.99))
}

// TestOpsDataRatesFromTheRegistry: the figures are differences of the
// registry's series between two calls.
func TestOpsDataRatesFromTheRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	holds := prometheus.NewCounter(prometheus.CounterOpts{Name: "seat_holds_total"})
	waiting := prometheus.NewGauge(prometheus.GaugeOpts{Name: "queue_waiting"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "http_request_duration_seconds", Buckets: []float64{0.01, 0.1, 1},
	}, []string{"route", "method", "status"})
	reg.MustRegister(holds, waiting, latency)
	ready := errors.New("down")
	o := &opsSampler{g: reg, ready: func(context.Context) error { return ready }}

	t0 := time.Unix(1000, 0)
	d, err := o.data(context.Background(), t0)
	require.NoError(t, err)
	require.Nil(t, d.WindowSeconds)
	require.Nil(t, d.Rates.Holds)
	require.Equal(t, "down", d.Store.Health)

	holds.Add(20)
	waiting.Set(7)
	for range 99 {
		latency.WithLabelValues("/reservations", "POST", "200").Observe(0.005)
	}
	latency.WithLabelValues("/reservations", "POST", "503").Observe(0.5)
	ready = nil
	d, err = o.data(context.Background(), t0.Add(2*time.Second))
	require.NoError(t, err)
	require.InDelta(t, 2, *d.WindowSeconds, 1e-9)
	require.InDelta(t, 10, *d.Rates.Holds, 1e-9)
	require.InDelta(t, 0.5, *d.Rates.Unavailable, 1e-9)
	require.Equal(t, 7.0, d.Queue.Waiting)
	require.Equal(t, "degraded", d.Store.Health, "a 503 in the window")
	require.Len(t, d.Routes, 1)
	require.Equal(t, opsRouteRow{Method: "POST", Route: "/reservations", RequestsPerSecond: d.Routes[0].RequestsPerSecond,
		P99Seconds: d.Routes[0].P99Seconds}, d.Routes[0])
	require.InDelta(t, 50, *d.Routes[0].RequestsPerSecond, 1e-9)
	require.InDelta(t, 0.01, *d.Routes[0].P99Seconds, 1e-9)

	// A window of at most opsWindow: later calls compare with a sample ~5 s old.
	for i := 3; i <= 20; i++ {
		d, err = o.data(context.Background(), t0.Add(time.Duration(i)*time.Second))
		require.NoError(t, err)
	}
	require.InDelta(t, 5, *d.WindowSeconds, 1e-9)
	require.Equal(t, 0.0, *d.Rates.Holds)
	require.Equal(t, "ok", d.Store.Health)
}
