package http

import (
	"context"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The operations page (GET /ops, ops_page.go) polls GET /ops/data once a
// second. The figures are derived from the node's own metrics registry —
// the series /metrics serves — so the page shows nothing that /metrics
// does not, and needs no hook in the code it watches: each call gathers the
// registry, keeps the sample (a ring of opsHistory), and turns the
// difference from a sample a few seconds older into rates, means and 99th
// percentiles (estimated from the histograms' buckets, as Prometheus'
// histogram_quantile does).

const (
	// opsWindow is the span the rates and percentiles are taken over, once
	// the node has samples that old.
	opsWindow = 5 * time.Second
	// opsMinWindow is the shortest span shown: samples closer than this are
	// not differenced (null rates).
	opsMinWindow = 500 * time.Millisecond
	// opsHistory bounds the samples kept.
	opsHistory = 64
	// opsReadyEvery bounds how often the page's readiness probe runs.
	opsReadyEvery = time.Second
)

// opsSampler gathers the registry for the page.
type opsSampler struct {
	g     prometheus.Gatherer
	ready func(context.Context) error

	mu       sync.Mutex
	samples  []opsSample // oldest first
	readyAt  time.Time
	readyErr error
}

// opsSample is what one gathering kept: the sums of the counters and gauges
// the page shows (over all their labels, or by a chosen label) and the
// histograms, by series.
type opsSample struct {
	at     time.Time
	values map[string]float64 // metric name (or name{label}) → value summed
	hists  map[string]opsHist // histogram key → merged buckets
}

// opsHist is a histogram's cumulative bucket counts (merged over labels
// that are not part of its key).
type opsHist struct {
	bounds []float64
	counts []float64 // cumulative, per bound
	count  float64
	sum    float64
}

// The series the page reads. Counters and gauges are summed over their
// labels; snapshot_last_size_bytes is kept by kind.
var opsSummed = []string{
	"seat_holds_total", "seat_hold_cancels_total", "seat_hold_expiries_total",
	"seat_payments_confirmed_total", "seat_payment_aborts_total",
	"wallet_charges_total", "queue_tokens_issued_total", "queue_admissions_total", "queue_token_expiries_total",
	"actor_overload_refusals_total", "store_errors_total", "journal_append_errors_total",
	"db_pool_acquire_wait_seconds_total", "token_stream_events_total",
	"queue_waiting", "queue_active", "token_streams_open",
	"db_pool_acquired_connections", "db_pool_idle_connections", "db_pool_total_connections", "db_pool_max_connections",
}

// opsRouteKey is the histogram key of a route: "METHOD route".
func opsRouteKey(method, route string) string { return method + " " + route }

// gather reads the registry into a sample.
func (o *opsSampler) gather(now time.Time) (opsSample, error) {
	mfs, err := o.g.Gather()
	s := opsSample{at: now, values: map[string]float64{}, hists: map[string]opsHist{}}
	if err != nil && len(mfs) == 0 {
		return s, err
	}
	want := map[string]bool{}
	for _, n := range opsSummed {
		want[n] = true
	}
	for _, mf := range mfs {
		name := mf.GetName()
		switch {
		case want[name]:
			for _, m := range mf.GetMetric() {
				s.values[name] += metricValue(m)
			}
		case name == "snapshot_last_size_bytes":
			for _, m := range mf.GetMetric() {
				s.values[name+"{"+label(m, "kind")+"}"] = metricValue(m)
			}
		case name == "http_request_duration_seconds":
			for _, m := range mf.GetMetric() {
				key := opsRouteKey(label(m, "method"), label(m, "route"))
				s.hists[key] = s.hists[key].add(m.GetHistogram())
				if label(m, "status") == "503" {
					s.values["http_503"] += float64(m.GetHistogram().GetSampleCount())
				}
				s.values["http_requests"] += float64(m.GetHistogram().GetSampleCount())
			}
		case name == "journal_batch_size", name == "journal_batch_seconds":
			for _, m := range mf.GetMetric() {
				s.hists[name] = s.hists[name].add(m.GetHistogram())
			}
		}
	}
	return s, nil
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// add merges h into the histogram (same buckets).
func (a opsHist) add(h *dto.Histogram) opsHist {
	if h == nil {
		return a
	}
	b := h.GetBucket()
	if a.bounds == nil {
		a.bounds = make([]float64, len(b))
		a.counts = make([]float64, len(b))
		for i, bk := range b {
			a.bounds[i] = bk.GetUpperBound()
		}
	}
	for i, bk := range b {
		if i < len(a.counts) {
			a.counts[i] += float64(bk.GetCumulativeCount())
		}
	}
	a.count += float64(h.GetSampleCount())
	a.sum += h.GetSampleSum()
	return a
}

// since is the histogram of the observations made after old.
func (a opsHist) since(old opsHist) opsHist {
	d := opsHist{bounds: a.bounds, counts: slices.Clone(a.counts), count: a.count - old.count, sum: a.sum - old.sum}
	if len(old.counts) == len(d.counts) {
		for i := range d.counts {
			d.counts[i] -= old.counts[i]
		}
	}
	return d
}

// quantile estimates the q-quantile (0 < q < 1) by linear interpolation
// within its bucket; above the last bound it is that bound. nil without
// observations.
func (a opsHist) quantile(q float64) *float64 {
	if a.count <= 0 {
		return nil
	}
	rank := q * a.count
	lower, below := 0.0, 0.0
	for i, c := range a.counts {
		if c >= rank {
			upper := a.bounds[i]
			v := upper
			if c > below {
				v = lower + (upper-lower)*(rank-below)/(c-below)
			}
			return &v
		}
		lower, below = a.bounds[i], c
	}
	v := lower // in the +Inf bucket: the largest finite bound
	return &v
}

func (a opsHist) mean() *float64 {
	if a.count <= 0 {
		return nil
	}
	v := a.sum / a.count
	return &v
}

// opsData is GET /ops/data's answer (OpsData in openapi.yaml).
type opsData struct {
	At            string        `json:"at"`
	WindowSeconds *float64      `json:"windowSeconds"`
	Queue         opsQueue      `json:"queue"`
	Rates         opsRates      `json:"rates"`
	Journal       opsJournal    `json:"journal"`
	Store         opsStore      `json:"store"`
	Routes        []opsRouteRow `json:"routes"`
}

type opsQueue struct {
	Waiting float64 `json:"waiting"`
	Active  float64 `json:"active"`
	Streams float64 `json:"streams"`
}

// opsRates are per second over the window; null without one.
type opsRates struct {
	Holds            *float64 `json:"holds"`
	Payments         *float64 `json:"payments"`
	Charges          *float64 `json:"charges"`
	Cancels          *float64 `json:"cancels"`
	HoldExpiries     *float64 `json:"holdExpiries"`
	PaymentAborts    *float64 `json:"paymentAborts"`
	TokensIssued     *float64 `json:"tokensIssued"`
	Admissions       *float64 `json:"admissions"`
	TokenExpiries    *float64 `json:"tokenExpiries"`
	StreamEvents     *float64 `json:"streamEvents"`
	Requests         *float64 `json:"requests"`
	Unavailable      *float64 `json:"unavailable"`
	OverloadRefusals *float64 `json:"overloadRefusals"`
}

type opsJournal struct {
	BatchesPerSecond   *float64 `json:"batchesPerSecond"`
	EventsPerSecond    *float64 `json:"eventsPerSecond"`
	MeanBatchSize      *float64 `json:"meanBatchSize"`
	P99BatchSize       *float64 `json:"p99BatchSize"`
	MeanLatencySeconds *float64 `json:"meanLatencySeconds"`
	P99LatencySeconds  *float64 `json:"p99LatencySeconds"`
}

type opsStore struct {
	// Health is "ok", "degraded" (ready, but store errors or 503 answers in
	// the window) or "down" (the readiness probe fails).
	Health                string   `json:"health"`
	Ready                 bool     `json:"ready"`
	ErrorsPerSecond       *float64 `json:"errorsPerSecond"`
	PoolAcquired          float64  `json:"poolAcquired"`
	PoolIdle              float64  `json:"poolIdle"`
	PoolTotal             float64  `json:"poolTotal"`
	PoolMax               float64  `json:"poolMax"`
	AcquireWaitPerSecond  *float64 `json:"acquireWaitSecondsPerSecond"`
	QueueSnapshotBytes    *float64 `json:"queueSnapshotBytes"`
	AppendErrorsPerSecond *float64 `json:"appendErrorsPerSecond"`
}

type opsRouteRow struct {
	Method            string   `json:"method"`
	Route             string   `json:"route"`
	RequestsPerSecond *float64 `json:"requestsPerSecond"`
	P99Seconds        *float64 `json:"p99Seconds"`
}

// data gathers a sample and computes the page's figures.
func (o *opsSampler) data(ctx context.Context, now time.Time) (opsData, error) {
	cur, err := o.gather(now)
	if err != nil {
		return opsData{}, err
	}
	ready := o.probe(ctx, now)

	o.mu.Lock()
	var base *opsSample
	for i := len(o.samples) - 1; i >= 0; i-- {
		s := &o.samples[i]
		if now.Sub(s.at) < opsMinWindow {
			continue
		}
		base = s
		if now.Sub(s.at) >= opsWindow {
			break
		}
	}
	var old opsSample
	if base != nil {
		old = *base
	}
	// Keep at most one sample per opsMinWindow, opsHistory of them.
	if n := len(o.samples); n == 0 || now.Sub(o.samples[n-1].at) >= opsMinWindow {
		o.samples = append(o.samples, cur)
		if len(o.samples) > opsHistory {
			o.samples = slices.Delete(o.samples, 0, len(o.samples)-opsHistory)
		}
	}
	o.mu.Unlock()

	d := opsData{
		At: stamp(now),
		Queue: opsQueue{
			Waiting: cur.values["queue_waiting"],
			Active:  cur.values["queue_active"],
			Streams: cur.values["token_streams_open"],
		},
		Store: opsStore{
			Ready:        ready,
			PoolAcquired: cur.values["db_pool_acquired_connections"],
			PoolIdle:     cur.values["db_pool_idle_connections"],
			PoolTotal:    cur.values["db_pool_total_connections"],
			PoolMax:      cur.values["db_pool_max_connections"],
		},
		Routes: []opsRouteRow{},
	}
	if v, ok := cur.values["snapshot_last_size_bytes{queue}"]; ok {
		d.Store.QueueSnapshotBytes = &v
	}
	var span float64
	if base != nil {
		span = now.Sub(old.at).Seconds()
		d.WindowSeconds = &span
	}
	rate := func(name string) *float64 {
		if base == nil {
			return nil
		}
		v := max(cur.values[name]-old.values[name], 0) / span
		return &v
	}
	d.Rates = opsRates{
		Holds:            rate("seat_holds_total"),
		Payments:         rate("seat_payments_confirmed_total"),
		Charges:          rate("wallet_charges_total"),
		Cancels:          rate("seat_hold_cancels_total"),
		HoldExpiries:     rate("seat_hold_expiries_total"),
		PaymentAborts:    rate("seat_payment_aborts_total"),
		TokensIssued:     rate("queue_tokens_issued_total"),
		Admissions:       rate("queue_admissions_total"),
		TokenExpiries:    rate("queue_token_expiries_total"),
		StreamEvents:     rate("token_stream_events_total"),
		Requests:         rate("http_requests"),
		Unavailable:      rate("http_503"),
		OverloadRefusals: rate("actor_overload_refusals_total"),
	}
	d.Store.ErrorsPerSecond = rate("store_errors_total")
	d.Store.AppendErrorsPerSecond = rate("journal_append_errors_total")
	d.Store.AcquireWaitPerSecond = rate("db_pool_acquire_wait_seconds_total")
	switch {
	case !ready:
		d.Store.Health = "down"
	case nonZero(d.Store.ErrorsPerSecond), nonZero(d.Rates.Unavailable), nonZero(d.Rates.OverloadRefusals):
		d.Store.Health = "degraded"
	default:
		d.Store.Health = "ok"
	}

	if base != nil {
		batches := cur.hists["journal_batch_size"].since(old.hists["journal_batch_size"])
		latency := cur.hists["journal_batch_seconds"].since(old.hists["journal_batch_seconds"])
		bps, eps := batches.count/span, batches.sum/span
		d.Journal = opsJournal{
			BatchesPerSecond:   &bps,
			EventsPerSecond:    &eps,
			MeanBatchSize:      batches.mean(),
			P99BatchSize:       batches.quantile(0.99),
			MeanLatencySeconds: latency.mean(),
			P99LatencySeconds:  latency.quantile(0.99),
		}
	}
	for key, h := range cur.hists {
		method, route, ok := strings.Cut(key, " ")
		if !ok || strings.HasPrefix(key, "journal_") {
			continue
		}
		row := opsRouteRow{Method: method, Route: route}
		if base != nil {
			w := h.since(old.hists[key])
			rps := w.count / span
			row.RequestsPerSecond = &rps
			row.P99Seconds = w.quantile(0.99)
		}
		d.Routes = append(d.Routes, row)
	}
	slices.SortFunc(d.Routes, func(a, b opsRouteRow) int {
		if c := compareDesc(a.RequestsPerSecond, b.RequestsPerSecond); c != 0 {
			return c
		}
		return strings.Compare(a.Route+" "+a.Method, b.Route+" "+b.Method)
	})
	return d, nil
}

func nonZero(v *float64) bool { return v != nil && *v > 0 }

// compareDesc orders larger values (then nil) first.
func compareDesc(a, b *float64) int {
	av, bv := math.Inf(-1), math.Inf(-1)
	if a != nil {
		av = *a
	}
	if b != nil {
		bv = *b
	}
	switch {
	case av > bv:
		return -1
	case av < bv:
		return 1
	}
	return 0
}

// probe runs the readiness check at most once per opsReadyEvery.
func (o *opsSampler) probe(ctx context.Context, now time.Time) bool {
	if o.ready == nil {
		return true
	}
	o.mu.Lock()
	if !o.readyAt.IsZero() && now.Sub(o.readyAt) < opsReadyEvery {
		err := o.readyErr
		o.mu.Unlock()
		return err == nil
	}
	o.readyAt = now
	o.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	err := o.ready(ctx)
	o.mu.Lock()
	o.readyErr = err
	o.mu.Unlock()
	return err == nil
}

// handler: GET /ops/data → the page's figures (JSON).
func (o *opsSampler) handler(c *fiber.Ctx) error {
	d, err := o.data(c.UserContext(), time.Now())
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(d)
}
