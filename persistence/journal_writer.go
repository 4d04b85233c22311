package persistence

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// writer gathers a batch — the first queued call, then whatever else is
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
		n := first.weight()
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
				n += r.weight()
				continue
			default:
			}
			if linger <= 0 || j.writing.Load() == 0 {
				// Idle pipeline: lingering would only add latency.
				break
			}
			select {
			case r, ok := <-j.reqs:
				if !ok {
					open = false
					break gather
				}
				batch = append(batch, r)
				n += r.weight()
			case <-timer.C:
				break gather
			}
		}
		if linger > 0 {
			timer.Stop()
		}
		j.writing.Add(1)
		w.write(j, batch, n)
		j.writing.Add(-1)
		clear(batch) // drop references to finished calls
		// If the queue was closed while gathering, the next receive drains
		// what is left or reports the close.
	}
}

// weight is what a call counts towards MaxBatch: its events, or one for a
// reminder-only call.
func (r *request) weight() int { return max(len(r.events), 1) }

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

	// Reminder changes of the batch, one per actor (the last in queue
	// order wins), sorted by actor id so concurrent batches lock reminder
	// rows in one order.
	lastChange map[string]int // actor id → index in batch of its last change
	setIDs     []string
	setDue     []time.Time
	clearIDs   []string
}

// The batch statement: one INSERT ... SELECT FROM unnest of every row of the
// batch. It has no ON CONFLICT clause on purpose: a duplicate key fails the
// whole statement, which autocommit makes atomic, so no call can be half
// written and the common case costs one round trip, no explicit
// transaction.
//
// With PruneAfterSnapshot the rows at or below the actor's stored snapshot
// are gone, so the primary key no longer fences them: the pruning variant
// refuses such rows with journal_pruned (migration 000002), which raises a
// unique_violation as a duplicate key would. Its correlated subquery is one
// primary-key probe of journal_snapshots per row, measured at +20-25% of
// the statement's cost by BenchmarkBatchStatement, which is why the plain
// variant is kept when nothing is pruned.
const (
	insertPlainSelect = `INSERT INTO journal_events (actor_id, seq, event_type, payload, writer_id)
SELECT a, s, t, p, $5 FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bytea[]) AS u(a, s, t, p)`
	insertPruningSelect = `INSERT INTO journal_events (actor_id, seq, event_type, payload, writer_id)
SELECT u.a,
       CASE WHEN u.s <= (SELECT sn.seq FROM journal_snapshots sn WHERE sn.actor_id = u.a)
            THEN journal_pruned(u.a, u.s) ELSE u.s END,
       u.t, u.p, $5
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bytea[]) AS u(a, s, t, p)`
)

// withReminders wraps an events insert into a statement that also applies
// the batch's reminder changes (data-modifying CTEs: one snapshot, one
// atomic statement). The actor ids of $6 and $8 are disjoint.
func withReminders(insertEvents string) string {
	return `WITH ins AS (
` + insertEvents + `
), rem AS (
INSERT INTO journal_reminders (actor_id, due_at)
SELECT * FROM unnest($6::text[], $7::timestamptz[])
ON CONFLICT (actor_id) DO UPDATE SET due_at = EXCLUDED.due_at
)
DELETE FROM journal_reminders WHERE actor_id = ANY($8::text[])`
}

// batchStatements are the two statements a Journal's writers use: events
// only, and events with reminder changes.
type batchStatements struct {
	events, withReminders string
}

func newBatchStatements(prune bool) batchStatements {
	q := insertPlainSelect
	if prune {
		q = insertPruningSelect
	}
	return batchStatements{events: q, withReminders: withReminders(q)}
}

// existingSQL finds which rows of a failed batch already exist, or are
// covered by the actor's snapshot.
const existingSQL = `SELECT u.a, u.s FROM unnest($1::text[], $2::bigint[]) AS u(a, s)
WHERE EXISTS (SELECT 1 FROM journal_events e WHERE e.actor_id = u.a AND e.seq = u.s)
   OR u.s <= (SELECT sn.seq FROM journal_snapshots sn WHERE sn.actor_id = u.a)`

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

// fill loads the rows and reminder changes of the calls not yet failed into
// the column buffers.
func (w *batchWriter) fill(batch []*request) {
	w.actors, w.seqs, w.types, w.payloads = w.actors[:0], w.seqs[:0], w.types[:0], w.payloads[:0]
	w.setIDs, w.setDue, w.clearIDs = w.setIDs[:0], w.setDue[:0], w.clearIDs[:0]
	changes := false
	for i, r := range batch {
		if w.errs[i] != nil {
			continue
		}
		changes = changes || !r.reminder.IsZero()
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
	if changes {
		w.fillReminders(batch)
	}
}

// fillReminders keeps, per actor, the last reminder change of the calls not
// yet failed.
func (w *batchWriter) fillReminders(batch []*request) {
	if w.lastChange == nil {
		w.lastChange = make(map[string]int)
	}
	clear(w.lastChange)
	for i, r := range batch {
		if w.errs[i] == nil && !r.reminder.IsZero() {
			w.lastChange[r.actorID] = i
		}
	}
	ids := make([]string, 0, len(w.lastChange))
	for id := range w.lastChange {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, strings.Compare)
	for _, id := range ids {
		c := batch[w.lastChange[id]].reminder
		if c.Set {
			w.setIDs = append(w.setIDs, id)
			w.setDue = append(w.setDue, c.DueAt)
		} else {
			w.clearIDs = append(w.clearIDs, id)
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
		if len(w.actors) == 0 && len(w.setIDs) == 0 && len(w.clearIDs) == 0 {
			return nil
		}
		if len(w.setIDs) == 0 && len(w.clearIDs) == 0 {
			_, err = conn.Exec(ctx, j.sql.events, w.actors, w.seqs, w.types, w.payloads, j.opts.WriterID)
		} else {
			_, err = conn.Exec(ctx, j.sql.withReminders, w.actors, w.seqs, w.types, w.payloads, j.opts.WriterID,
				w.setIDs, w.setDue, w.clearIDs)
		}
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
			// No row of the batch exists nor is covered by a snapshot, yet
			// the insert hit a duplicate: fail rather than loop.
			return fmt.Errorf("insert: %w", err)
		}
	}
}

// fenceExisting marks with ErrFenced the calls with a row that already
// exists or is covered by the actor's snapshot, and returns how many it
// marked.
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
