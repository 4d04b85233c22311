package persistence_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/concert/ticketing/persistence"
	"github.com/concert/ticketing/persistence/journaltest"
	"github.com/concert/ticketing/persistence/pgtest"
)

// TestJournalContract runs the journal contract against PostgreSQL.
func TestJournalContract(t *testing.T) {
	journaltest.Run(t, func(t *testing.T, cfg journaltest.Config) journaltest.Store {
		return newPGStore(t, persistence.JournalOptions{
			SnapshotWriters:    cfg.SnapshotWriters,
			PruneAfterSnapshot: cfg.PruneAfterSnapshot,
		})
	})
}

// pgStore is a Journal with the contract's fault hooks. It has one writer,
// so that a writer held on a row lock holds every append, and a short queue.
type pgStore struct {
	*persistence.Journal
	pool *pgxpool.Pool
	opts persistence.JournalOptions
}

const pgStoreQueueLen = 16

var blockerCount atomic.Int64

func newPGStore(t *testing.T, opts persistence.JournalOptions) *pgStore {
	t.Helper()
	opts.Writers = 1
	opts.QueueLen = pgStoreQueueLen
	if opts.SnapshotWriters == 0 {
		opts.SnapshotWriters = persistence.DefaultSnapshotWriters
	}
	pool := pgtest.NewDatabase(t)
	return &pgStore{Journal: newJournal(t, pool, opts), pool: pool, opts: opts}
}

// holdWriter makes the store's only writer wait inside a batch: a test
// transaction inserts a row, uncommitted, and an append of the same row
// then waits on it in PostgreSQL. When holdWriter returns the writer is
// waiting and the queue is empty. release rolls the transaction back, and
// returns once the held append has been written.
func (s *pgStore) holdWriter(t *testing.T) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatalf("hold writer: %v", err)
	}
	id := fmt.Sprintf("journaltest/blocker/%d", blockerCount.Add(1))
	if _, err := tx.Exec(ctx, `INSERT INTO journal_events (actor_id, seq, event_type, payload, writer_id)
VALUES ($1, 1, 'Blocker', '', 'test')`, id); err != nil {
		_ = tx.Rollback(ctx)
		t.Fatalf("hold writer: %v", err)
	}
	done := make(chan error, 1)
	if err := s.AppendAsync(id, []persistence.Event{{Seq: 1, Type: "Blocker"}}, persistence.ReminderChange{},
		func(err error) { done <- err }); err != nil {
		_ = tx.Rollback(ctx)
		t.Fatalf("hold writer: %v", err)
	}
	s.waitLockWaiters(t, 1)
	return func() {
		t.Helper()
		if err := tx.Rollback(ctx); err != nil {
			t.Fatalf("release writer: %v", err)
		}
		if err := <-done; err != nil {
			t.Fatalf("held append: %v", err)
		}
	}
}

// waitLockWaiters polls until n sessions of the store's database wait for
// a lock: a condition, not a duration, so it holds on a busy machine.
func (s *pgStore) waitLockWaiters(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var waiting int
		err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		if err != nil {
			t.Fatalf("count lock waiters: %v", err)
		}
		if waiting >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d sessions waiting for a lock after a minute", waiting, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// InOneBatch implements journaltest.Batcher: the calls fn makes queue up
// behind the held writer, which then takes them all into its next batch.
func (s *pgStore) InOneBatch(t *testing.T, fn func()) {
	release := s.holdWriter(t)
	fn()
	release()
}

// Saturate implements journaltest.Overloader: the writer is held and the
// queue filled.
func (s *pgStore) Saturate(t *testing.T) (release func()) {
	releaseWriter := s.holdWriter(t)
	dones := make(chan error, pgStoreQueueLen)
	for i := range pgStoreQueueLen {
		id := fmt.Sprintf("journaltest/filler/%d/%d", blockerCount.Load(), i)
		if err := s.AppendAsync(id, []persistence.Event{{Seq: 1, Type: "Filler"}}, persistence.ReminderChange{},
			func(err error) { dones <- err }); err != nil {
			t.Fatalf("fill queue, call %d: %v", i, err)
		}
	}
	return func() {
		releaseWriter()
		for range pgStoreQueueLen {
			if err := <-dones; err != nil {
				t.Fatalf("filler append: %v", err)
			}
		}
	}
}

// OccupySnapshotWriters implements journaltest.SnapshotStaller: a test
// transaction locks journal_snapshots against writes, and SnapshotWriters
// saves wait on it, each holding a slot.
func (s *pgStore) OccupySnapshotWriters(t *testing.T) (release func()) {
	ctx := context.Background()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatalf("occupy snapshot writers: %v", err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE journal_snapshots IN SHARE MODE`); err != nil {
		_ = tx.Rollback(ctx)
		t.Fatalf("occupy snapshot writers: %v", err)
	}
	n := s.opts.SnapshotWriters
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.SaveSnapshot(ctx, fmt.Sprintf("journaltest/occupier/%d", i), persistence.Snapshot{Seq: 1, Type: "S"})
		}()
	}
	s.waitLockWaiters(t, n)
	return func() {
		if err := tx.Rollback(ctx); err != nil {
			t.Fatalf("release snapshot writers: %v", err)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("occupying snapshot: %v", err)
			}
		}
	}
}

// TestBatchAndErrorMetrics checks what the contract cannot see: calls queued
// behind a held writer are written in one batch; fenced, overloaded and
// invalid calls are counted by reason; and a refused call's done never runs
// (checked after Close, which returns once every queued done has run).
func TestBatchAndErrorMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newPGStore(t, persistence.JournalOptions{Registerer: reg})
	ctx := ctxT(t)
	if err := s.Append(ctx, "A", events(1, 1, "Old"), persistence.ReminderChange{}); err != nil {
		t.Fatal(err)
	}
	batches := histogramCount(t, reg, "journal_batch_size")

	results := make(chan error, 3)
	s.InOneBatch(t, func() {
		for _, actor := range []string{"A", "B", "C"} {
			mustQueue(t, s.Journal, actor, events(1, 2, "New"), func(err error) { results <- err })
		}
	})
	var fenced, ok int
	for range 3 {
		switch err := <-results; {
		case err == nil:
			ok++
		case errors.Is(err, persistence.ErrFenced):
			fenced++
		default:
			t.Fatalf("batched call: %v", err)
		}
	}
	if fenced != 1 || ok != 2 {
		t.Fatalf("%d fenced, %d written; want 1, 2", fenced, ok)
	}
	// The held writer's own call, then the three calls together.
	if n := histogramCount(t, reg, "journal_batch_size") - batches; n != 2 {
		t.Fatalf("%d batches, want 2", n)
	}

	var refusedDones atomic.Int32
	release := s.Saturate(t)
	if err := s.AppendAsync("ov", events(1, 1, "E"), persistence.ReminderChange{}, func(error) { refusedDones.Add(1) }); !errors.Is(err, persistence.ErrOverloaded) {
		t.Fatalf("append while saturated: %v", err)
	}
	release()
	if err := s.AppendAsync("", events(1, 1, "E"), persistence.ReminderChange{}, func(error) { refusedDones.Add(1) }); !errors.Is(err, persistence.ErrInvalid) {
		t.Fatalf("invalid append: %v", err)
	}
	s.Close()
	if err := s.AppendAsync("late", events(1, 1, "E"), persistence.ReminderChange{}, func(error) { refusedDones.Add(1) }); !errors.Is(err, persistence.ErrUnavailable) || errors.Is(err, persistence.ErrOverloaded) {
		t.Fatalf("append after Close: %v", err)
	}
	if n := refusedDones.Load(); n != 0 {
		t.Fatalf("done of refused calls ran %d times", n)
	}
	for reason, want := range map[string]float64{"fenced": 1, "overloaded": 1, "invalid": 1, "unavailable": 1} {
		if v := counterValue(t, reg, "journal_append_errors_total", reason); v != want {
			t.Errorf("journal_append_errors_total{reason=%q} = %v, want %v", reason, v, want)
		}
	}
}
