package persistence

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// journalMetrics are the journal's Prometheus collectors.
type journalMetrics struct {
	batchSize    prometheus.Histogram
	batchSeconds prometheus.Histogram
	// errors counts failed appends in journal_append_errors_total and in
	// store_errors_total{op="append"}.
	errors appendErrors
	// lastSeqQueries and lastSeqActors count read-fence queries (LastSeq)
	// and the actors they confirmed: one query serves many actors.
	lastSeqQueries prometheus.Counter
	lastSeqActors  prometheus.Counter
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
		errors: appendErrors{
			journal: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "journal_append_errors_total",
				Help: "Journal append calls that failed, by reason (fenced, unavailable, overloaded, invalid).",
			}, []string{"reason"}),
			store: newStoreErrors(),
		},
		lastSeqQueries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "journal_fence_queries_total",
			Help: "Read-fence queries (the latest sequence number of actors that must confirm they are still the latest writer).",
		}),
		lastSeqActors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "journal_fence_actors_total",
			Help: "Actors confirmed by read-fence queries (one query serves every actor waiting when it starts).",
		}),
	}
	if reg != nil {
		m.lastSeqQueries = register(reg, m.lastSeqQueries)
		m.lastSeqActors = register(reg, m.lastSeqActors)
		m.batchSize = register(reg, m.batchSize)
		m.batchSeconds = register(reg, m.batchSeconds)
		m.errors.journal = register(reg, m.errors.journal)
		m.errors.store = register(reg, m.errors.store)
	}
	for _, reason := range []string{"fenced", "unavailable", "overloaded", "invalid"} {
		m.errors.journal.WithLabelValues(reason) // present from the start, at 0
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

// ---- the store as an operator sees it ----

// storeErrorsHelp documents store_errors_total.
const storeErrorsHelp = "Store operations that failed, by operation (append, snapshot_save, snapshot_load, replay, recover, " +
	"archive_load, reminders, fence, catalog, ping) and reason (unavailable, timeout, overloaded, fenced, busy, invalid, other). " +
	"A look-up of a missing row and a call its caller cancelled are not failures."

func newStoreErrors() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "store_errors_total", Help: storeErrorsHelp},
		[]string{"op", "reason"})
}

// appendErrors counts a failed append both in journal_append_errors_total
// (by reason) and in store_errors_total (op "append"); the journal uses it
// as it would the first CounterVec.
type appendErrors struct {
	journal, store *prometheus.CounterVec
}

func (a appendErrors) WithLabelValues(reason string) prometheus.Counter {
	return bothCounters{a.journal.WithLabelValues(reason), a.store.WithLabelValues("append", reason)}
}

// bothCounters is a Counter that adds to two.
type bothCounters [2]prometheus.Counter

func (b bothCounters) Inc()                                { b[0].Inc(); b[1].Inc() }
func (b bothCounters) Add(v float64)                       { b[0].Add(v); b[1].Add(v) }
func (b bothCounters) Desc() *prometheus.Desc              { return b[0].Desc() }
func (b bothCounters) Write(m *dto.Metric) error           { return b[0].Write(m) }
func (b bothCounters) Describe(ch chan<- *prometheus.Desc) { b[0].Describe(ch) }
func (b bothCounters) Collect(ch chan<- prometheus.Metric) { b[0].Collect(ch) }

// errorReason is the store_errors_total reason of err, "" when err is no
// store failure (nil, a missing row, the caller's own cancellation).
func errorReason(err error) string {
	switch {
	case err == nil, errors.Is(err, ErrNotFound):
		return ""
	case errors.Is(err, ErrFenced):
		return "fenced"
	case errors.Is(err, ErrSnapshotBusy):
		return "busy"
	case errors.Is(err, ErrOverloaded):
		return "overloaded"
	case errors.Is(err, ErrInvalid):
		return "invalid"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	case errors.Is(err, context.Canceled):
		return ""
	}
	return "other"
}

// StoreMetrics are the series of the store as the node uses it: failures of
// every operation (store_errors_total), and the size and cost of snapshots.
// Wrap the journal and the catalog the actors and the booking service use
// (Journal, Catalog); the wrappers add one look-up per failure and a clock
// read per snapshot.
type StoreMetrics struct {
	errors          *prometheus.CounterVec
	snapshotBytes   *prometheus.HistogramVec
	snapshotLast    *prometheus.GaugeVec
	snapshotSeconds *prometheus.HistogramVec
}

// NewStoreMetrics registers the store series on reg (shared with a
// Journal's on the same registry).
func NewStoreMetrics(reg prometheus.Registerer) *StoreMetrics {
	m := &StoreMetrics{
		errors: newStoreErrors(),
		snapshotBytes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "snapshot_size_bytes",
			Help:    "Size of the snapshots saved (the encoded state), by actor kind.",
			Buckets: prometheus.ExponentialBuckets(256, 4, 12), // 256 B .. 1 GiB
		}, []string{"kind"}),
		snapshotLast: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "snapshot_last_size_bytes",
			Help: "Size of the last snapshot saved, by actor kind (for the one queue manager, its state's size now).",
		}, []string{"kind"}),
		snapshotSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "snapshot_save_duration_seconds",
			Help:    "Time to save a snapshot (one transaction with its archived records), by actor kind; the actor goes on meanwhile.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms .. 16 s
		}, []string{"kind"}),
	}
	m.errors = register(reg, m.errors)
	m.snapshotBytes = register(reg, m.snapshotBytes)
	m.snapshotLast = register(reg, m.snapshotLast)
	m.snapshotSeconds = register(reg, m.snapshotSeconds)
	for _, op := range []string{"append", "snapshot_save", "recover", "replay", "catalog"} {
		m.errors.WithLabelValues(op, "unavailable") // present from the start, at 0
	}
	return m
}

func (m *StoreMetrics) failed(op string, err error) {
	if r := errorReason(err); r != "" {
		m.errors.WithLabelValues(op, r).Inc()
	}
}

// Journal wraps j so that its reads and snapshot saves are counted
// (appends are counted by j itself).
func (m *StoreMetrics) Journal(j *Journal) *MeteredJournal { return &MeteredJournal{Journal: j, m: m} }

// Catalog wraps c so that its failures are counted.
func (m *StoreMetrics) Catalog(c *Catalog) *MeteredCatalog { return &MeteredCatalog{Catalog: c, m: m} }

// MeteredJournal is a Journal whose operations are counted in StoreMetrics.
type MeteredJournal struct {
	*Journal
	m *StoreMetrics
}

// SaveSnapshot saves as Journal.SaveSnapshot does and records its size and
// duration (ErrSnapshotBusy: nothing was saved, only counted).
func (j *MeteredJournal) SaveSnapshot(ctx context.Context, actorID string, s Snapshot) error {
	start := time.Now()
	err := j.Journal.SaveSnapshot(ctx, actorID, s)
	j.m.failed("snapshot_save", err)
	if err == nil {
		kind := kindOf(actorID)
		j.m.snapshotSeconds.WithLabelValues(kind).Observe(time.Since(start).Seconds())
		j.m.snapshotBytes.WithLabelValues(kind).Observe(float64(len(s.Payload)))
		j.m.snapshotLast.WithLabelValues(kind).Set(float64(len(s.Payload)))
	}
	return err
}

// LoadSnapshot is Journal.LoadSnapshot, counted.
func (j *MeteredJournal) LoadSnapshot(ctx context.Context, actorID string) (Snapshot, bool, error) {
	s, ok, err := j.Journal.LoadSnapshot(ctx, actorID)
	j.m.failed("snapshot_load", err)
	return s, ok, err
}

// Recover is Journal.Recover, counted (an error of restore or apply counts
// as "other").
func (j *MeteredJournal) Recover(ctx context.Context, actorID string, restore func(Snapshot) error, apply func(Event) error) error {
	err := j.Journal.Recover(ctx, actorID, restore, apply)
	j.m.failed("recover", err)
	return err
}

// Replay is Journal.Replay, counted (an error of fn counts as "other").
func (j *MeteredJournal) Replay(ctx context.Context, actorID string, afterSeq int64, fn func(Event) error) error {
	err := j.Journal.Replay(ctx, actorID, afterSeq, fn)
	j.m.failed("replay", err)
	return err
}

// LoadArchived is Journal.LoadArchived, counted.
func (j *MeteredJournal) LoadArchived(ctx context.Context, actorID string, key int64) (Archived, bool, error) {
	a, ok, err := j.Journal.LoadArchived(ctx, actorID, key)
	j.m.failed("archive_load", err)
	return a, ok, err
}

// LastSeq is Journal.LastSeq, counted as "fence".
func (j *MeteredJournal) LastSeq(ctx context.Context, actorID string) (int64, error) {
	seq, err := j.Journal.LastSeq(ctx, actorID)
	j.m.failed("fence", err)
	return seq, err
}

// DueReminders is Journal.DueReminders, counted.
func (j *MeteredJournal) DueReminders(ctx context.Context, before time.Time, limit int) ([]Reminder, error) {
	r, err := j.Journal.DueReminders(ctx, before, limit)
	j.m.failed("reminders", err)
	return r, err
}

// MeteredCatalog is a Catalog whose failures are counted in StoreMetrics
// (op "catalog"; "ping" for Ping).
type MeteredCatalog struct {
	*Catalog
	m *StoreMetrics
}

// Ping is Catalog.Ping, counted as "ping".
func (c *MeteredCatalog) Ping(ctx context.Context) error {
	err := c.Catalog.Ping(ctx)
	c.m.failed("ping", err)
	return err
}

// CreateUser is Catalog.CreateUser, counted.
func (c *MeteredCatalog) CreateUser(ctx context.Context, name string) (User, error) {
	v, err := c.Catalog.CreateUser(ctx, name)
	c.m.failed("catalog", err)
	return v, err
}

// User is Catalog.User, counted.
func (c *MeteredCatalog) User(ctx context.Context, id int64) (User, error) {
	v, err := c.Catalog.User(ctx, id)
	c.m.failed("catalog", err)
	return v, err
}

// Concerts is Catalog.Concerts, counted.
func (c *MeteredCatalog) Concerts(ctx context.Context) ([]Concert, error) {
	v, err := c.Catalog.Concerts(ctx)
	c.m.failed("catalog", err)
	return v, err
}

// Concert is Catalog.Concert, counted.
func (c *MeteredCatalog) Concert(ctx context.Context, id int64) (Concert, error) {
	v, err := c.Catalog.Concert(ctx, id)
	c.m.failed("catalog", err)
	return v, err
}

// Options is Catalog.Options, counted.
func (c *MeteredCatalog) Options(ctx context.Context, concertID int64) ([]ConcertOption, error) {
	v, err := c.Catalog.Options(ctx, concertID)
	c.m.failed("catalog", err)
	return v, err
}

// Option is Catalog.Option, counted.
func (c *MeteredCatalog) Option(ctx context.Context, optionID int64) (ConcertOption, error) {
	v, err := c.Catalog.Option(ctx, optionID)
	c.m.failed("catalog", err)
	return v, err
}

// Seats is Catalog.Seats, counted.
func (c *MeteredCatalog) Seats(ctx context.Context, optionID int64) ([]Seat, error) {
	v, err := c.Catalog.Seats(ctx, optionID)
	c.m.failed("catalog", err)
	return v, err
}

// Seat is Catalog.Seat, counted.
func (c *MeteredCatalog) Seat(ctx context.Context, seatID int64) (Seat, error) {
	v, err := c.Catalog.Seat(ctx, seatID)
	c.m.failed("catalog", err)
	return v, err
}

// CreateConcert is Catalog.CreateConcert, counted.
func (c *MeteredCatalog) CreateConcert(ctx context.Context, title string, dates []time.Time, seatsPerDate int, price int64) (Concert, []ConcertOption, error) {
	concert, options, err := c.Catalog.CreateConcert(ctx, title, dates, seatsPerDate, price)
	c.m.failed("catalog", err)
	return concert, options, err
}

// kindOf is the kind of an actor id ("seat/42" → "seat").
func kindOf(actorID string) string {
	kind, _, _ := strings.Cut(actorID, "/")
	return kind
}

// PoolCollector exports a pgxpool's statistics, read once per scrape.
type PoolCollector struct {
	pool                                                *pgxpool.Pool
	acquired, idle, total, max, constructing            *prometheus.Desc
	acquires, emptyAcquires, canceled, acquireSec, wait *prometheus.Desc
}

// NewPoolCollector returns the collector of pool's db_pool_* series.
func NewPoolCollector(pool *pgxpool.Pool) *PoolCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &PoolCollector{
		pool:          pool,
		acquired:      d("db_pool_acquired_connections", "Database connections in use now."),
		idle:          d("db_pool_idle_connections", "Idle database connections in the pool now."),
		total:         d("db_pool_total_connections", "Database connections open now (in use, idle, being opened)."),
		max:           d("db_pool_max_connections", "Most database connections the pool opens (DB_MAX_CONNS)."),
		constructing:  d("db_pool_constructing_connections", "Database connections being opened now."),
		acquires:      d("db_pool_acquires_total", "Connections taken from the pool."),
		emptyAcquires: d("db_pool_empty_acquires_total", "Connections taken from the pool that had to wait: none was idle."),
		canceled:      d("db_pool_canceled_acquires_total", "Waits for a connection given up (the caller's deadline passed)."),
		acquireSec:    d("db_pool_acquire_duration_seconds_total", "Time spent taking connections from the pool, waits included."),
		wait:          d("db_pool_acquire_wait_seconds_total", "Time spent waiting for a connection because none was idle (the pool too small, or the database slow)."),
	}
}

// Describe implements prometheus.Collector.
func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.acquired, c.idle, c.total, c.max, c.constructing,
		c.acquires, c.emptyAcquires, c.canceled, c.acquireSec, c.wait} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	n := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	g(c.acquired, float64(s.AcquiredConns()))
	g(c.idle, float64(s.IdleConns()))
	g(c.total, float64(s.TotalConns()))
	g(c.max, float64(s.MaxConns()))
	g(c.constructing, float64(s.ConstructingConns()))
	n(c.acquires, float64(s.AcquireCount()))
	n(c.emptyAcquires, float64(s.EmptyAcquireCount()))
	n(c.canceled, float64(s.CanceledAcquireCount()))
	n(c.acquireSec, s.AcquireDuration().Seconds())
	n(c.wait, s.EmptyAcquireWaitTime().Seconds())
}
