package persistence_test

import (
	"bytes"
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

func TestAppendReplayOrder(t *testing.T) {
	pool := pgtest.NewDatabase(t)
	j := newJournal(t, pool, persistence.JournalOptions{})
	ctx := ctxT(t)

	// 2,500 events in calls of varying size cross Replay's 1,000-row pages.
	var want []persistence.Event
	for seq := int64(1); seq <= 2500; {
		n := seq%7 + 1
		if seq+n-1 > 2500 {
			n = 2500 - seq + 1
		}
		evs := events(seq, seq+n-1, "SeatHeld")
		if err := j.Append(ctx, "seat/1", evs); err != nil {
			t.Fatalf("append %d: %v", seq, err)
		}
		want = append(want, evs...)
		seq += n
	}
	if err := j.Append(ctx, "seat/2", events(1, 3, "Other")); err != nil {
		t.Fatal(err)
	}

	got := replayAll(t, j, "seat/1", 0)
	if len(got) != len(want) {
		t.Fatalf("replayed %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Seq != want[i].Seq || got[i].Type != want[i].Type || !bytes.Equal(got[i].Payload, want[i].Payload) {
			t.Fatalf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if got := replayAll(t, j, "seat/1", 1999); len(got) != 501 || got[0].Seq != 2000 {
		t.Fatalf("replay after 1999: %d events, first %+v", len(got), got[0])
	}
	if got := replayAll(t, j, "seat/404", 0); len(got) != 0 {
		t.Fatalf("unknown actor replayed %d events", len(got))
	}

	// An error from fn stops the replay and comes back as is.
	stop := errors.New("stop")
	calls := 0
	err := j.Replay(ctx, "seat/1", 0, func(persistence.Event) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("replay with failing fn: err %v after %d calls", err, calls)
	}
}

func TestSnapshotThenReplay(t *testing.T) {
	pool := pgtest.NewDatabase(t)
	j := newJournal(t, pool, persistence.JournalOptions{})
	ctx := ctxT(t)

	if _, ok, err := j.LoadSnapshot(ctx, "seat/7"); err != nil || ok {
		t.Fatalf("snapshot of new actor: ok %v err %v", ok, err)
	}
	if err := j.Append(ctx, "seat/7", events(1, 10, "E")); err != nil {
		t.Fatal(err)
	}
	if err := j.SaveSnapshot(ctx, "seat/7", persistence.Snapshot{Seq: 6, Type: "State", Payload: []byte("s6")}); err != nil {
		t.Fatal(err)
	}
	// An older snapshot does not replace a newer one.
	if err := j.SaveSnapshot(ctx, "seat/7", persistence.Snapshot{Seq: 4, Type: "State", Payload: []byte("s4")}); err != nil {
		t.Fatal(err)
	}
	s, ok, err := j.LoadSnapshot(ctx, "seat/7")
	if err != nil || !ok || s.Seq != 6 || string(s.Payload) != "s6" || s.Type != "State" {
		t.Fatalf("snapshot = %+v ok %v err %v", s, ok, err)
	}
	got := replayAll(t, j, "seat/7", s.Seq)
	if len(got) != 4 || got[0].Seq != 7 || got[3].Seq != 10 {
		t.Fatalf("replay after snapshot: %+v", got)
	}
	// A newer one does.
	if err := j.SaveSnapshot(ctx, "seat/7", persistence.Snapshot{Seq: 10, Type: "State", Payload: nil}); err != nil {
		t.Fatal(err)
	}
	if s, _, _ := j.LoadSnapshot(ctx, "seat/7"); s.Seq != 10 || len(s.Payload) != 0 {
		t.Fatalf("snapshot after newer save = %+v", s)
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

func TestFencedCallInBatch(t *testing.T) {
	pool := pgtest.NewDatabase(t)
	ctx := ctxT(t)
	// Another incarnation of A already wrote seq 1.
	pre := newJournal(t, pool, persistence.JournalOptions{WriterID: "old"})
	if err := pre.Append(ctx, "A", []persistence.Event{{Seq: 1, Type: "Old", Payload: []byte("old")}}); err != nil {
		t.Fatal(err)
	}

	// One writer that lingers long enough to gather all three calls.
	reg := prometheus.NewRegistry()
	j := newJournal(t, pool, persistence.JournalOptions{WriterID: "new", Writers: 1, Linger: 300 * time.Millisecond, Registerer: reg})

	start := make(chan struct{})
	results := make(map[string]error)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for actor, evs := range map[string][]persistence.Event{
		"A": events(1, 2, "New"),
		"B": events(1, 1, "New"),
		"C": events(1, 1, "New"),
	} {
		wg.Add(1)
		go func() {
			<-start
			j.AppendAsync(actor, evs, func(err error) {
				mu.Lock()
				results[actor] = err
				mu.Unlock()
				wg.Done()
			})
		}()
	}
	close(start)
	wg.Wait()

	if n := histogramCount(t, reg, "journal_batch_size"); n != 1 {
		t.Fatalf("the three calls took %d batches, want 1", n)
	}
	if !errors.Is(results["A"], persistence.ErrFenced) {
		t.Fatalf("A: %v, want ErrFenced", results["A"])
	}
	if errors.Is(results["A"], persistence.ErrUnavailable) {
		t.Fatalf("A: %v is also ErrUnavailable", results["A"])
	}
	for _, actor := range []string{"B", "C"} {
		if results[actor] != nil {
			t.Fatalf("%s: %v", actor, results[actor])
		}
		if got := replayAll(t, j, actor, 0); len(got) != 1 || got[0].Type != "New" {
			t.Fatalf("%s journal: %+v", actor, got)
		}
	}
	got := replayAll(t, j, "A", 0)
	if len(got) != 1 || got[0].Type != "Old" || string(got[0].Payload) != "old" {
		t.Fatalf("A journal after fenced call: %+v (want only the old seq 1)", got)
	}
	if v := counterValue(t, reg, "journal_append_errors_total", "fenced"); v != 1 {
		t.Fatalf("fenced counter = %v", v)
	}

	// Fenced on a later seq too: the old incarnation moved on to seq 2.
	if err := pre.Append(ctx, "A", events(2, 2, "Old")); err != nil {
		t.Fatal(err)
	}
	if err := j.Append(ctx, "A", events(2, 3, "New")); !errors.Is(err, persistence.ErrFenced) {
		t.Fatalf("append over existing seq 2: %v", err)
	}
	if got := replayAll(t, j, "A", 0); len(got) != 2 || got[1].Type != "Old" {
		t.Fatalf("A journal: %+v", got)
	}
}

func TestSameRowTwiceInOneBatch(t *testing.T) {
	pool := pgtest.NewDatabase(t)
	j := newJournal(t, pool, persistence.JournalOptions{Writers: 1, Linger: 300 * time.Millisecond})
	errs := make(chan error, 2)
	j.AppendAsync("X", events(1, 2, "First"), func(err error) { errs <- err })
	j.AppendAsync("X", events(2, 3, "Second"), func(err error) { errs <- err })
	e1, e2 := <-errs, <-errs
	if (e1 == nil) == (e2 == nil) {
		t.Fatalf("want exactly one winner: %v, %v", e1, e2)
	}
	fenced := e1
	if fenced == nil {
		fenced = e2
	}
	if !errors.Is(fenced, persistence.ErrFenced) {
		t.Fatalf("loser: %v, want ErrFenced", fenced)
	}
	got := replayAll(t, j, "X", 0)
	if len(got) != 2 || got[0].Type != got[1].Type {
		t.Fatalf("X journal mixes calls: %+v", got)
	}
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
				j.AppendAsync(actor, events(seq, seq+n-1, actor), func(err error) { done <- err })
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
		j.AppendAsync("pipe", events(seq, seq, "E"), func(err error) {
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
		j.AppendAsync(fmt.Sprintf("c/%d", a), events(1, 1, "E"), func(err error) {
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
	err := j.Append(ctxT(t), "late", events(1, 1, "E"))
	if !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("append after Close: %v", err)
	}
	j.Close() // idempotent
}

func TestAppendRejectsInvalidCalls(t *testing.T) {
	pool := pgtest.NewDatabase(t)
	j := newJournal(t, pool, persistence.JournalOptions{})
	ctx := ctxT(t)
	for name, tc := range map[string]struct {
		actor string
		evs   []persistence.Event
	}{
		"empty actor":    {"", events(1, 1, "E")},
		"seq zero":       {"a", events(0, 1, "E")},
		"gap":            {"a", []persistence.Event{{Seq: 1}, {Seq: 3}}},
		"NUL in actor":   {"a\x00b", events(1, 1, "E")},
		"bad UTF-8 type": {"a", []persistence.Event{{Seq: 1, Type: "\xff"}}},
	} {
		err := j.Append(ctx, tc.actor, tc.evs)
		if err == nil || errors.Is(err, persistence.ErrUnavailable) || errors.Is(err, persistence.ErrFenced) {
			t.Errorf("%s: %v, want an invalid-call error", name, err)
		}
	}
	if err := j.Append(ctx, "a", nil); err != nil {
		t.Fatalf("empty append: %v", err)
	}
	// The journal still works, and nothing was written by the bad calls.
	if err := j.Append(ctx, "a", events(1, 1, "E")); err != nil {
		t.Fatal(err)
	}
}

func TestAppendHonoursContext(t *testing.T) {
	pool := pgtest.NewDatabase(t)
	j := newJournal(t, pool, persistence.JournalOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := j.Append(ctx, "a", events(1, 1, "E")); !errors.Is(err, context.Canceled) {
		t.Fatalf("append with canceled ctx: %v", err)
	}
}

func TestOutage(t *testing.T) {
	srv := pgtest.NewServer(t)
	pool := srv.NewDatabase(t)
	j := newJournal(t, pool, persistence.JournalOptions{})
	cat := persistence.NewCatalog(pool)
	ctx := ctxT(t)

	if err := j.Append(ctx, "o/1", events(1, 1, "E")); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}

	// Appends while PostgreSQL is down fail fast with ErrUnavailable.
	for i := range 5 {
		began := time.Now()
		err := j.Append(ctx, fmt.Sprintf("o/%d", i+2), events(1, 1, "E"))
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
		j.AppendAsync(fmt.Sprintf("many/%d", i), events(1, 1, "E"), func(err error) {
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
		err := j.Append(ctx, "o/1", events(seq, seq, "E"))
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
