package persistence

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of JournalOptions, chosen by BenchmarkJournal on a 2-core VM.
// DefaultWriters was 4 until concertbench showed 2 better end to end on
// the same 2-core VMs (README, Performance: "Journal writers"): fewer
// writers make bigger batches for the same load, so PostgreSQL spends
// less CPU per event, and at half load the hold path no longer saturates
// the machine (fresh-holds open at 7,000 holds/s: 503s with 4, none
// with 2).
const (
	DefaultWriters         = 2
	DefaultMaxBatch        = 1000
	DefaultLinger          = 200 * time.Microsecond
	DefaultSnapshotWriters = 2
	// DefaultMinQueueLen is the smallest default queue: the default
	// QueueLen is max(DefaultMinQueueLen, Writers×MaxBatch) calls. It
	// keeps a little more than the 4,000 calls four writers had when four
	// was the default, so that going down to two writers did not also
	// halve the queue.
	DefaultMinQueueLen = 4096
)

const (
	// batchTimeout bounds one batch (acquire, insert, commit) so a stalled
	// server turns into ErrUnavailable instead of a hang.
	batchTimeout = 5 * time.Second
	// acquireTimeout bounds waiting for a pooled connection within a batch.
	acquireTimeout = 2 * time.Second
	// replayPage is the number of rows Replay reads per query.
	replayPage = 1000
)

// JournalOptions configure a Journal. Zero values take the defaults.
type JournalOptions struct {
	// WriterID is stored in every row (the node id); default hostname-pid.
	WriterID string
	// Writers is the number of concurrent writer goroutines, each using one
	// pooled connection per batch; default DefaultWriters. The pool's
	// MaxConns should exceed Writers + SnapshotWriters, or other users of
	// the pool starve.
	Writers int
	// MaxBatch is the number of events after which a writer stops gathering
	// calls and writes (a call without events counts as one); default
	// DefaultMaxBatch. One call's events are never split, so a batch can
	// exceed it by one call.
	MaxBatch int
	// Linger is the longest a writer waits, after taking the first call, for
	// more calls to fill the batch; default DefaultLinger (200µs). Most
	// batching is natural (calls queue up while a batch waits for its
	// fsync); a short linger merges the stragglers and measured ~10-20%
	// faster than 0 here. It adapts: a writer lingers only while another
	// writer has a batch in flight, so a lone request on an idle pipeline
	// is written at once. Negative means 0 (write what is queued at once).
	Linger time.Duration
	// QueueLen is the number of calls the queue holds before AppendAsync
	// refuses with ErrOverloaded; default max(DefaultMinQueueLen,
	// Writers×MaxBatch).
	QueueLen int
	// SnapshotWriters is the number of SaveSnapshot calls that may run at
	// once; a call beyond it fails at once with ErrSnapshotBusy. Default
	// DefaultSnapshotWriters.
	SnapshotWriters int
	// PruneAfterSnapshot makes SaveSnapshot delete, in the same transaction,
	// the actor's events up to the snapshot it replaces (so one snapshot
	// interval of events stays behind the latest snapshot), and the writers
	// fence appends at or below the actor's stored snapshot (the primary
	// key can no longer do it for pruned rows; the check costs about a
	// fifth more per batch statement). Every Journal on one database must
	// agree on it: a non-pruning journal does not check.
	//
	// Why not up to the new snapshot: a batch statement of a duplicate
	// incarnation that began before that snapshot committed does not see
	// it, and with the rows already deleted nothing would conflict. Keeping
	// the rows until the next snapshot means such a stale write still hits
	// the primary key unless it stays uncommitted for a whole snapshot
	// interval.
	PruneAfterSnapshot bool
	// Registerer, if set, receives journal_batch_size and
	// journal_batch_seconds histograms and the journal_append_errors_total
	// counter (label reason: fenced, unavailable, overloaded, invalid).
	// Collectors that are already registered (a second Journal) are shared.
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
	if o.QueueLen <= 0 {
		o.QueueLen = max(DefaultMinQueueLen, o.Writers*o.MaxBatch)
	}
	if o.SnapshotWriters <= 0 {
		o.SnapshotWriters = DefaultSnapshotWriters
	}
	return o
}

// request is one AppendAsync call waiting in the queue.
type request struct {
	actorID  string
	events   []Event
	reminder ReminderChange
	done     func(error)
}

// Journal is the PostgreSQL event journal with group commit, reminders and
// snapshots. All methods are safe for concurrent use.
//
// Ordering: calls for one actor are written in queue order only when the
// caller waits for one to finish before issuing the next (as an actor that
// persists then replies does); concurrent calls for the same actor may be
// written by different writers in any order, and the primary key then
// decides (the loser gets ErrFenced).
type Journal struct {
	pool *pgxpool.Pool
	opts JournalOptions
	reqs chan *request
	// writing counts the writers with a batch in flight: a writer lingers
	// for stragglers only while another is committing (load), and writes at
	// once when the pipeline is otherwise idle.
	writing   atomic.Int32
	snapSlots chan struct{} // one token per running SaveSnapshot
	sql       batchStatements
	metrics   *journalMetrics
	lastSeq   readBatcher[*lastSeqCall] // LastSeq calls (journal_lastseq.go)
	recovers  readBatcher[*recoverCall] // Recover calls (journal_read.go)

	mu     sync.RWMutex // guards closed against sends on reqs
	closed bool
	once   sync.Once
	wg     sync.WaitGroup
}

// NewJournal starts opts.Writers writer goroutines that write to pool. Call
// Close to stop them.
func NewJournal(pool *pgxpool.Pool, opts JournalOptions) *Journal {
	opts = opts.withDefaults()
	j := &Journal{
		pool:      pool,
		opts:      opts,
		reqs:      make(chan *request, opts.QueueLen),
		snapSlots: make(chan struct{}, opts.SnapshotWriters),
		sql:       newBatchStatements(opts.PruneAfterSnapshot),
		metrics:   newJournalMetrics(opts.Registerer),
	}
	j.wg.Add(opts.Writers)
	for range opts.Writers {
		go j.writer()
	}
	return j
}

// AppendAsync queues the events of one actor, and an optional change of its
// reminder, to be written in one transaction.
//
// If the call is refused it returns an error at once and done is never
// called; nothing was written: an error wrapping ErrInvalid for a malformed
// call (see ValidateAppend), ErrOverloaded when the queue is full (it never
// blocks), ErrUnavailable after Close.
//
// Otherwise it returns nil and done is called exactly once, later, from
// another goroutine: nil when everything is durable; an error wrapping
// ErrFenced when a row (actor_id, seq) already existed or seq is at or below
// the actor's stored snapshot (another incarnation wrote first: nothing of
// the call, reminder included, was kept); or an error wrapping
// ErrUnavailable when the store failed (the outcome of a commit whose reply
// was lost is unknown: replay before writing again).
//
// events must carry contiguous increasing Seq values starting at ≥ 1; the
// caller must not modify them until done runs. A call without events writes
// only its reminder change and is never fenced; a call without events and
// without a change succeeds.
//
// done must be cheap (send a message, close a channel): it runs on a writer
// goroutine and delays the other callers of the batch.
func (j *Journal) AppendAsync(actorID string, events []Event, reminder ReminderChange, done func(error)) error {
	if err := ValidateAppend(actorID, events, reminder); err != nil {
		j.metrics.errors.WithLabelValues("invalid").Inc()
		return fmt.Errorf("journal append %s: %w", actorID, err)
	}
	if len(events) == 0 && reminder.IsZero() {
		go done(nil)
		return nil
	}
	r := &request{actorID: actorID, events: events, reminder: reminder, done: done}
	if err := j.enqueue(r); err != nil {
		reason := "unavailable"
		if errors.Is(err, ErrOverloaded) {
			reason = "overloaded"
		}
		j.metrics.errors.WithLabelValues(reason).Inc()
		return fmt.Errorf("journal append %s: %w", actorID, err)
	}
	return nil
}

// enqueue puts r in the queue without blocking.
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
		return fmt.Errorf("%w: queue of %d calls full", ErrOverloaded, cap(j.reqs))
	}
}

// Append is the blocking form of AppendAsync: it returns AppendAsync's
// refusal, or waits for done's result. If ctx ends first it returns ctx's
// error wrapped; the write may still complete later, so the caller must
// treat the outcome as unknown.
func (j *Journal) Append(ctx context.Context, actorID string, events []Event, reminder ReminderChange) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("journal append %s: %w", actorID, err)
	}
	ch := make(chan error, 1)
	if err := j.AppendAsync(actorID, events, reminder, func(err error) { ch <- err }); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return fmt.Errorf("journal append %s: %w", actorID, ctx.Err())
	}
}

// Close stops accepting appends (later calls are refused with
// ErrUnavailable), writes what is queued, and returns when the writers have
// stopped and every queued done has been called. It is idempotent.
func (j *Journal) Close() {
	j.once.Do(func() {
		j.mu.Lock()
		j.closed = true
		close(j.reqs)
		j.mu.Unlock()
	})
	j.wg.Wait()
}
