package persistence_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/concert/ticketing/persistence"
	"github.com/concert/ticketing/persistence/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newJournal(t *testing.T, pool *pgxpool.Pool, opts persistence.JournalOptions) *persistence.Journal {
	t.Helper()
	j := persistence.NewJournal(pool, opts)
	t.Cleanup(j.Close)
	return j
}

func events(from, to int64, typ string) []persistence.Event {
	var out []persistence.Event
	for s := from; s <= to; s++ {
		out = append(out, persistence.Event{Seq: s, Type: typ, Payload: []byte(fmt.Sprintf("%s-%d", typ, s))})
	}
	return out
}

func replayAll(t *testing.T, j *persistence.Journal, actor string, after int64) []persistence.Event {
	t.Helper()
	var got []persistence.Event
	if err := j.Replay(ctxT(t), actor, after, func(e persistence.Event) error {
		got = append(got, e)
		return nil
	}); err != nil {
		t.Fatalf("replay %s: %v", actor, err)
	}
	return got
}

// mustQueue queues an append without a reminder change. A refusal fails the
// test and is passed to done, so that waiters do not hang.
func mustQueue(t *testing.T, j *persistence.Journal, actor string, evs []persistence.Event, done func(error)) {
	if err := j.AppendAsync(actor, evs, persistence.ReminderChange{}, done); err != nil {
		t.Errorf("append %s refused: %v", actor, err)
		done(err)
	}
}

// eventually polls fn every 50ms until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// histogramCount reads the sample count of a registered histogram.
func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func counterValue(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelIs(m, "reason", reason) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labelIs(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

func TestConcurrentWritersKeepSequences(t *testing.T) {
	pool := pgtest.NewDatabase(t)
	j := newJournal(t, pool, persistence.JournalOptions{Writers: 4, MaxBatch: 64})
	const actors, perActor = 100, 60

	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, actors)
	for a := range actors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			actor := fmt.Sprintf("seat/%d", a)
			for seq := int64(1); seq <= perActor; {
				n := int64(a%3 + 1) // calls of 1..3 events
				if seq+n-1 > perActor {
					n = perActor - seq + 1
				}
				done := make(chan error, 1)
				mustQueue(t, j, actor, events(seq, seq+n-1, actor), func(err error) { done <- err })
				if err := <-done; err != nil {
					errs <- err
					return
				}
				seq += n
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for a := range actors {
		actor := fmt.Sprintf("seat/%d", a)
		got := replayAll(t, j, actor, 0)
		if len(got) != perActor {
			t.Fatalf("%s: %d events", actor, len(got))
		}
		for i, e := range got {
			if e.Seq != int64(i+1) || e.Type != actor || string(e.Payload) != fmt.Sprintf("%s-%d", actor, i+1) {
				t.Fatalf("%s event %d = %+v", actor, i, e)
			}
		}
	}
}

func TestPipelinedAppendsOfOneActor(t *testing.T) {
	pool := pgtest.NewDatabase(t)
	j := newJournal(t, pool, persistence.JournalOptions{})
	const n = 200
	var wg sync.WaitGroup
	wg.Add(n)
	var mu sync.Mutex
	var failed []error
	for seq := int64(1); seq <= n; seq++ {
		mustQueue(t, j, "pipe", events(seq, seq, "E"), func(err error) {
			if err != nil {
				mu.Lock()
				failed = append(failed, err)
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatal(failed)
	}
	if got := replayAll(t, j, "pipe", 0); len(got) != n || got[n-1].Seq != n {
		t.Fatalf("replayed %d", len(got))
	}
}

func TestCloseFlushesAndRejects(t *testing.T) {
	pool := pgtest.NewDatabase(t)
	j := persistence.NewJournal(pool, persistence.JournalOptions{Writers: 2})
	const n = 500
	var wg sync.WaitGroup
	wg.Add(n)
	var mu sync.Mutex
	var failed []error
	for a := range n {
		mustQueue(t, j, fmt.Sprintf("c/%d", a), events(1, 1, "E"), func(err error) {
			if err != nil {
				mu.Lock()
				failed = append(failed, err)
				mu.Unlock()
			}
			wg.Done()
		})
	}
	j.Close()
	wg.Wait() // every done was called by Close's return or soon after
	if len(failed) > 0 {
		t.Fatal(failed)
	}
	var count int
	if err := pool.QueryRow(ctxT(t), `SELECT count(*) FROM journal_events`).Scan(&count); err != nil || count != n {
		t.Fatalf("rows after Close: %d, %v", count, err)
	}
	err := j.Append(ctxT(t), "late", events(1, 1, "E"), persistence.ReminderChange{})
	if !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("append after Close: %v", err)
	}
	j.Close() // idempotent
}

func TestAppendHonoursContext(t *testing.T) {
	pool := pgtest.NewDatabase(t)
	j := newJournal(t, pool, persistence.JournalOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := j.Append(ctx, "a", events(1, 1, "E"), persistence.ReminderChange{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("append with canceled ctx: %v", err)
	}
}

func TestOutage(t *testing.T) {
	srv := pgtest.NewServer(t)
	pool := srv.NewDatabase(t)
	j := newJournal(t, pool, persistence.JournalOptions{})
	cat := persistence.NewCatalog(pool)
	ctx := ctxT(t)

	if err := j.Append(ctx, "o/1", events(1, 1, "E"), persistence.ReminderChange{}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}

	// Appends while PostgreSQL is down fail fast with ErrUnavailable.
	for i := range 5 {
		began := time.Now()
		err := j.Append(ctx, fmt.Sprintf("o/%d", i+2), events(1, 1, "E"), persistence.ReminderChange{})
		if !errors.Is(err, persistence.ErrUnavailable) {
			t.Fatalf("append during outage: %v", err)
		}
		if d := time.Since(began); d > 3*time.Second {
			t.Fatalf("append during outage took %v", d)
		}
	}
	// Many at once, all answered.
	var wg sync.WaitGroup
	var unavailable, other int
	var mu sync.Mutex
	began := time.Now()
	for i := range 200 {
		wg.Add(1)
		mustQueue(t, j, fmt.Sprintf("many/%d", i), events(1, 1, "E"), func(err error) {
			mu.Lock()
			if errors.Is(err, persistence.ErrUnavailable) {
				unavailable++
			} else {
				other++
			}
			mu.Unlock()
			wg.Done()
		})
	}
	wg.Wait()
	if unavailable != 200 || time.Since(began) > 3*time.Second {
		t.Fatalf("outage burst: %d unavailable, %d other, in %v", unavailable, other, time.Since(began))
	}
	if err := cat.Ping(ctx); !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("catalog ping during outage: %v", err)
	}
	if _, err := cat.User(ctx, 1); !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("catalog read during outage: %v", err)
	}
	if err := j.Replay(ctx, "o/1", 0, func(persistence.Event) error { return nil }); !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("replay during outage: %v", err)
	}

	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	seq := int64(2)
	eventually(t, 10*time.Second, func() error {
		err := j.Append(ctx, "o/1", events(seq, seq, "E"), persistence.ReminderChange{})
		if errors.Is(err, persistence.ErrFenced) { // an earlier try committed after all
			seq++
		}
		return err
	})
	if got := replayAll(t, j, "o/1", 0); len(got) < 2 {
		t.Fatalf("after recovery: %+v", got)
	}
	if err := cat.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}
