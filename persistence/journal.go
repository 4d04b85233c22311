package persistence

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Event is one journal row of an actor. Seq starts at 1 and is contiguous
// per actor; Type names the payload's message type.
type Event struct {
	Seq     int64
	Type    string
	Payload []byte
}

// Snapshot is the latest saved state of an actor, covering events up to Seq.
// Archive holds records that leave the actor's state with this snapshot.
type Snapshot struct {
	Seq     int64
	Type    string
	Payload []byte
	Archive []Archived
}

// Archived is one record moved out of an actor's state into the archive.
type Archived struct {
	Key     int64
	Type    string
	Payload []byte
}

// ReminderChange is an optional update of an actor's reminder (a durable
// wake-up) written with the events of one append. The zero value changes
// nothing.
type ReminderChange struct {
	Set   bool
	DueAt time.Time
	Clear bool
}

// Reminder is one stored reminder.
type Reminder struct {
	ActorID string
	DueAt   time.Time
}

// ErrOverloaded means the journal could not queue a write; nothing was
// written. It matches ErrUnavailable too.
var ErrOverloaded = fmt.Errorf("%w: journal overloaded", ErrUnavailable)

// ErrSnapshotBusy means too many snapshot saves are running; retry later.
var ErrSnapshotBusy = errors.New("snapshot writers busy")

// Defaults of JournalOptions, chosen by BenchmarkJournal on a 2-core VM.
const (
	DefaultWriters  = 4
	DefaultMaxBatch = 1000
	DefaultLinger   = 200 * time.Microsecond
)

const (
	// batchTimeout bounds one batch (acquire, insert, commit) so a stalled
	// server turns into ErrUnavailable instead of a hang.
	batchTimeout = 5 * time.Second
	// acquireTimeout bounds waiting for a pooled connection within a batch.
	acquireTimeout = 2 * time.Second
	// queueWait is how long AppendAsync blocks on a full queue before it
	// gives up with ErrUnavailable.
	queueWait = 100 * time.Millisecond
	// replayPage is the number of rows Replay reads per query.
	replayPage = 1000
)

// JournalOptions configure a Journal. Zero values take the defaults.
type JournalOptions struct {
	// WriterID is stored in every row (the node id); default hostname-pid.
	WriterID string
	// Writers is the number of concurrent writer goroutines, each using one
	// pooled connection per batch; default DefaultWriters. The pool's
	// MaxConns should exceed it, or other users of the pool starve.
	Writers int
	// MaxBatch is the number of events after which a writer stops gathering
	// requests and writes; default DefaultMaxBatch. One call's events are
	// never split, so a batch can exceed it by one call.
	MaxBatch int
	// Linger is the longest a writer waits, after taking the first request,
	// for more requests to fill the batch; default DefaultLinger (200µs).
	// Most batching is natural (requests queue up while a batch waits for
	// its fsync); a short linger merges the stragglers and measured ~10-20%
	// faster than 0 here. Negative means 0 (write what is queued at once).
	Linger time.Duration
	// Registerer, if set, receives journal_batch_size and
	// journal_batch_seconds histograms and the journal_append_errors_total
	// counter (label reason: fenced, unavailable, invalid). Collectors that
	// are already registered (a second Journal) are shared.
	Registerer prometheus.Registerer
}

func (o JournalOptions) withDefaults() JournalOptions {
	if o.WriterID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "unknown"
		}
		o.WriterID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if o.Writers <= 0 {
		o.Writers = DefaultWriters
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.Linger == 0 {
		o.Linger = DefaultLinger
	}
	if o.Linger < 0 {
		o.Linger = 0
	}
	return o
}

// request is one AppendAsync call waiting in the queue.
type request struct {
	actorID string
	events  []Event
	done    func(error)
}

// Journal is the PostgreSQL event journal with group commit. All methods are
// safe for concurrent use.
//
// Ordering: calls for one actor are written in queue order only when the
// caller waits for one to finish before issuing the next (as an actor that
// persists then replies does); concurrent calls for the same actor may be
// written by different writers in any order, and the primary key then
// decides (the loser gets ErrFenced).
type Journal struct {
	pool    *pgxpool.Pool
	opts    JournalOptions
	reqs    chan *request
	metrics *journalMetrics

	mu     sync.RWMutex // guards closed against sends on reqs
	closed bool
	once   sync.Once
	wg     sync.WaitGroup
}

// NewJournal starts opts.Writers writer goroutines that write to pool. Call
// Close to stop them.
func NewJournal(pool *pgxpool.Pool, opts JournalOptions) *Journal {
	opts = opts.withDefaults()
	queue := opts.Writers * opts.MaxBatch
	if queue < 1024 {
		queue = 1024
	}
	j := &Journal{
		pool:    pool,
		opts:    opts,
		reqs:    make(chan *request, queue),
		metrics: newJournalMetrics(opts.Registerer),
	}
	j.wg.Add(opts.Writers)
	for range opts.Writers {
		go j.writer()
	}
	return j
}

// AppendAsync queues events of one actor and calls done exactly once, from
// a goroutine other than the caller's, when they are all durable (nil) or
// none of them were kept: ErrFenced if a row (actor_id, seq) already existed,
// an error wrapping ErrUnavailable if the store failed (the outcome of a
// commit whose reply was lost is unknown), or an invalid-argument error.
//
// events must carry contiguous increasing Seq values starting at ≥ 1; the
// caller must not modify them until done runs. An empty events succeeds.
//
// Backpressure: the queue holds max(1024, Writers×MaxBatch) calls. When it
// is full AppendAsync blocks for up to 100 ms, then fails the call with
// ErrUnavailable. After Close it fails the call with ErrUnavailable.
//
// done must be cheap (send a message, close a channel): it runs on a writer
// goroutine and delays the other callers of the batch.
func (j *Journal) AppendAsync(actorID string, events []Event, _ ReminderChange, done func(error)) error {
	if err := validateAppend(actorID, events); err != nil {
		j.metrics.errors.WithLabelValues("invalid").Inc()
		return fmt.Errorf("journal append %s: %w", actorID, err)
	}
	if len(events) == 0 {
		go done(nil)
		return nil
	}
	r := &request{actorID: actorID, events: events, done: done}
	if err := j.enqueue(r); err != nil {
		j.metrics.errors.WithLabelValues("unavailable").Inc()
		return fmt.Errorf("journal append %s: %w", actorID, ErrOverloaded)
	}
	return nil
}

// DueReminders lists reminders due before the given time (shim).
func (j *Journal) DueReminders(ctx context.Context, before time.Time, limit int) ([]Reminder, error) {
	return nil, nil
}

// LoadArchived reads one archived record (shim).
func (j *Journal) LoadArchived(ctx context.Context, actorID string, key int64) (Archived, bool, error) {
	return Archived{}, false, nil
}

func (j *Journal) enqueue(r *request) error {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return unavailable(errors.New("journal closed"))
	}
	select {
	case j.reqs <- r:
		return nil
	default:
	}
	t := time.NewTimer(queueWait)
	defer t.Stop()
	select {
	case j.reqs <- r:
		return nil
	case <-t.C:
		return unavailable(errors.New("journal queue full"))
	}
}

func validateAppend(actorID string, events []Event) error {
	if actorID == "" {
		return fmt.Errorf("%w: empty actor id", errInvalidAppend)
	}
	if !validText(actorID) {
		return fmt.Errorf("%w: actor id is not valid UTF-8 text", errInvalidAppend)
	}
	for i, e := range events {
		if e.Seq < 1 {
			return fmt.Errorf("%w: seq %d < 1", errInvalidAppend, e.Seq)
		}
		if i > 0 && e.Seq != events[i-1].Seq+1 {
			return fmt.Errorf("%w: seq %d follows %d", errInvalidAppend, e.Seq, events[i-1].Seq)
		}
		if !validText(e.Type) {
			return fmt.Errorf("%w: event type of seq %d is not valid UTF-8 text", errInvalidAppend, e.Seq)
		}
	}
	return nil
}

// validText reports whether s can be stored in a PostgreSQL text column.
func validText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// Append is the blocking form of AppendAsync. If ctx ends first it returns
// ctx's error wrapped; the write may still complete later, so the caller must
// treat the outcome as unknown.
func (j *Journal) Append(ctx context.Context, actorID string, events []Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("journal append %s: %w", actorID, err)
	}
	ch := make(chan error, 1)
	if err := j.AppendAsync(actorID, events, ReminderChange{}, func(err error) { ch <- err }); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return fmt.Errorf("journal append %s: %w", actorID, ctx.Err())
	}
}

// Close stops accepting appends (later calls fail with ErrUnavailable),
// writes what is queued, and returns when the writers have stopped and every
// queued done has been called. It is idempotent.
func (j *Journal) Close() {
	j.once.Do(func() {
		j.mu.Lock()
		j.closed = true
		close(j.reqs)
		j.mu.Unlock()
	})
	j.wg.Wait()
}

// writer gathers a batch — the first queued request, then whatever else is
// queued (waiting up to Linger) until MaxBatch events — and writes it.
func (j *Journal) writer() {
	defer j.wg.Done()
	var (
		batch  []*request
		timer  *time.Timer
		w      batchWriter
		linger = j.opts.Linger
	)
	if linger > 0 {
		timer = time.NewTimer(time.Hour)
		timer.Stop()
	}
	for {
		first, ok := <-j.reqs
		if !ok {
			return
		}
		batch = append(batch[:0], first)
		n := len(first.events)
		open := true
		if linger > 0 {
			timer.Reset(linger)
		}
	gather:
		for open && n < j.opts.MaxBatch {
			select {
			case r, ok := <-j.reqs:
				if !ok {
					open = false
					break gather
				}
				batch = append(batch, r)
				n += len(r.events)
				continue
			default:
			}
			if linger <= 0 {
				break
			}
			select {
			case r, ok := <-j.reqs:
				if !ok {
					open = false
					break gather
				}
				batch = append(batch, r)
				n += len(r.events)
			case <-timer.C:
				break gather
			}
		}
		if linger > 0 {
			timer.Stop()
		}
		w.write(j, batch, n)
		clear(batch) // drop references to finished requests
		// If the queue was closed while gathering, the next receive drains
		// what is left or reports the close.
	}
}

// eventKey identifies one journal row.
type eventKey struct {
	actorID string
	seq     int64
}

// batchWriter holds one writer's reusable buffers.
type batchWriter struct {
	actors   []string
	seqs     []int64
	types    []string
	payloads [][]byte
	errs     []error
}

// insertSQL writes a batch in one statement. It has no ON CONFLICT clause on
// purpose: a duplicate key fails the whole statement, which autocommit makes
// atomic, so no call can be half written and the common case costs one round
// trip, no explicit transaction.
const insertSQL = `INSERT INTO journal_events (actor_id, seq, event_type, payload, writer_id)
SELECT a, s, t, p, $5 FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bytea[]) AS u(a, s, t, p)`

// existingSQL finds which rows of a failed batch already exist.
const existingSQL = `SELECT e.actor_id, e.seq FROM journal_events e
JOIN unnest($1::text[], $2::bigint[]) AS u(a, s) ON e.actor_id = u.a AND e.seq = u.s`

// maxFenceRounds bounds the retries of one batch after duplicate keys; each
// round fences at least one call, and races with other writers are rare.
const maxFenceRounds = 16

// write writes batch (n events) and calls every done.
//
// A duplicate key aborts the statement as a whole; the writer then looks up
// which rows exist, fences the calls that own them (ErrFenced), and writes
// the rest again. Any other failure fails every call of the batch with
// ErrUnavailable.
func (w *batchWriter) write(j *Journal, batch []*request, n int) {
	start := time.Now()
	w.errs = append(w.errs[:0], make([]error, len(batch))...)
	fenceDuplicates(batch, w.errs)
	if err := w.insert(j, batch); err != nil {
		err = unavailable(err)
		for i := range w.errs {
			if w.errs[i] == nil {
				w.errs[i] = err
			}
		}
	}

	j.metrics.batchSize.Observe(float64(n))
	j.metrics.batchSeconds.Observe(time.Since(start).Seconds())
	for i, r := range batch {
		err := w.errs[i]
		if err != nil {
			reason := "unavailable"
			if errors.Is(err, ErrFenced) {
				reason = "fenced"
			}
			j.metrics.errors.WithLabelValues(reason).Inc()
			err = fmt.Errorf("journal append %s: %w", r.actorID, err)
		}
		r.done(err)
	}
}

// fenceDuplicates fences, among calls of one batch claiming the same row,
// all but the first in queue order.
func fenceDuplicates(batch []*request, errs []error) {
	if !hasDuplicateActors(batch) {
		return
	}
	seen := make(map[eventKey]struct{})
	for i, r := range batch {
		dup := false
		for _, e := range r.events {
			if _, ok := seen[eventKey{r.actorID, e.Seq}]; ok {
				dup = true
				break
			}
		}
		if dup {
			errs[i] = ErrFenced
			continue
		}
		for _, e := range r.events {
			seen[eventKey{r.actorID, e.Seq}] = struct{}{}
		}
	}
}

func hasDuplicateActors(batch []*request) bool {
	if len(batch) < 2 {
		return false
	}
	if len(batch) <= 16 {
		for i := range batch {
			for k := i + 1; k < len(batch); k++ {
				if batch[i].actorID == batch[k].actorID {
					return true
				}
			}
		}
		return false
	}
	ids := make(map[string]struct{}, len(batch))
	for _, r := range batch {
		if _, ok := ids[r.actorID]; ok {
			return true
		}
		ids[r.actorID] = struct{}{}
	}
	return false
}

// fill loads the rows of the calls not yet failed into the column buffers.
func (w *batchWriter) fill(batch []*request) {
	w.actors, w.seqs, w.types, w.payloads = w.actors[:0], w.seqs[:0], w.types[:0], w.payloads[:0]
	for i, r := range batch {
		if w.errs[i] != nil {
			continue
		}
		for _, e := range r.events {
			p := e.Payload
			if p == nil {
				p = []byte{}
			}
			w.actors = append(w.actors, r.actorID)
			w.seqs = append(w.seqs, e.Seq)
			w.types = append(w.types, e.Type)
			w.payloads = append(w.payloads, p)
		}
	}
}

// insert writes the calls of batch not yet failed, fencing those whose rows
// exist. A returned error means nothing of the remaining calls was written,
// or (a lost reply) that the outcome is unknown.
func (w *batchWriter) insert(j *Journal, batch []*request) error {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()

	actx, acancel := context.WithTimeout(ctx, acquireTimeout)
	conn, err := j.pool.Acquire(actx)
	acancel()
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()

	for round := 0; ; round++ {
		w.fill(batch)
		if len(w.actors) == 0 {
			return nil
		}
		_, err := conn.Exec(ctx, insertSQL, w.actors, w.seqs, w.types, w.payloads, j.opts.WriterID)
		if err == nil {
			return nil
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23505" || round == maxFenceRounds {
			return fmt.Errorf("insert: %w", err)
		}
		fenced, ferr := w.fenceExisting(ctx, conn, batch)
		if ferr != nil {
			return fmt.Errorf("find existing rows: %w", ferr)
		}
		if fenced == 0 {
			// The conflicting row is gone again: cannot happen while rows
			// are never deleted; fail rather than loop.
			return fmt.Errorf("insert: %w", err)
		}
	}
}

// fenceExisting marks with ErrFenced the calls with a row that already
// exists, and returns how many it marked.
func (w *batchWriter) fenceExisting(ctx context.Context, conn *pgxpool.Conn, batch []*request) (int, error) {
	rows, err := conn.Query(ctx, existingSQL, w.actors, w.seqs)
	if err != nil {
		return 0, err
	}
	existing := make(map[eventKey]struct{})
	var k eventKey
	_, err = pgx.ForEachRow(rows, []any{&k.actorID, &k.seq}, func() error {
		existing[k] = struct{}{}
		return nil
	})
	if err != nil {
		return 0, err
	}
	fenced := 0
	for i, r := range batch {
		if w.errs[i] != nil {
			continue
		}
		for _, e := range r.events {
			if _, ok := existing[eventKey{r.actorID, e.Seq}]; ok {
				w.errs[i] = ErrFenced
				fenced++
				break
			}
		}
	}
	return fenced, nil
}

// LoadSnapshot returns the actor's snapshot, or false if it has none.
func (j *Journal) LoadSnapshot(ctx context.Context, actorID string) (Snapshot, bool, error) {
	var s Snapshot
	err := j.pool.QueryRow(ctx,
		`SELECT seq, snapshot_type, payload FROM journal_snapshots WHERE actor_id = $1`,
		actorID).Scan(&s.Seq, &s.Type, &s.Payload)
	if errors.Is(err, pgx.ErrNoRows) {
		return Snapshot{}, false, nil
	}
	if err != nil {
		return Snapshot{}, false, fmt.Errorf("journal load snapshot %s: %w", actorID, classify(err))
	}
	return s, true, nil
}

// SaveSnapshot upserts the actor's one snapshot row, only if s.Seq is newer
// than the stored one (an older snapshot is ignored, without error).
func (j *Journal) SaveSnapshot(ctx context.Context, actorID string, s Snapshot) error {
	if !validText(actorID) || actorID == "" || !validText(s.Type) {
		return fmt.Errorf("journal save snapshot %q: %w: actor id and type must be non-empty UTF-8 text", actorID, errInvalidAppend)
	}
	p := s.Payload
	if p == nil {
		p = []byte{}
	}
	_, err := j.pool.Exec(ctx, `INSERT INTO journal_snapshots (actor_id, seq, snapshot_type, payload, writer_id, created_at)
VALUES ($1, $2, $3, $4, $5, now())
ON CONFLICT (actor_id) DO UPDATE
SET seq = EXCLUDED.seq, snapshot_type = EXCLUDED.snapshot_type, payload = EXCLUDED.payload,
    writer_id = EXCLUDED.writer_id, created_at = EXCLUDED.created_at
WHERE journal_snapshots.seq < EXCLUDED.seq`, actorID, s.Seq, s.Type, p, j.opts.WriterID)
	if err != nil {
		return fmt.Errorf("journal save snapshot %s: %w", actorID, classify(err))
	}
	return nil
}

// Replay calls fn for each event of the actor with Seq > afterSeq, in Seq
// order, reading pages of 1000 rows so that a long journal is never all in
// memory; fn runs while no connection is held. An error from fn stops the
// replay and is returned as is.
func (j *Journal) Replay(ctx context.Context, actorID string, afterSeq int64, fn func(Event) error) error {
	page := make([]Event, 0, replayPage)
	for {
		rows, err := j.pool.Query(ctx,
			`SELECT seq, event_type, payload FROM journal_events
WHERE actor_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, actorID, afterSeq, replayPage)
		if err != nil {
			return fmt.Errorf("journal replay %s after %d: %w", actorID, afterSeq, classify(err))
		}
		page = page[:0]
		var e Event
		_, err = pgx.ForEachRow(rows, []any{&e.Seq, &e.Type, &e.Payload}, func() error {
			page = append(page, e)
			e.Payload = nil // the next scan must not reuse the same array
			return nil
		})
		if err != nil {
			return fmt.Errorf("journal replay %s after %d: %w", actorID, afterSeq, classify(err))
		}
		for _, ev := range page {
			if err := fn(ev); err != nil {
				return err
			}
			afterSeq = ev.Seq
		}
		if len(page) < replayPage {
			return nil
		}
	}
}

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
			Help: "Journal append calls that failed, by reason (fenced, unavailable, invalid).",
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
