package persistence_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/concert/ticketing/persistence"
	"github.com/concert/ticketing/persistence/pgtest"
)

// BenchmarkJournal measures group commit: 1,000 goroutines, one simulated
// actor each, each appending one 200-byte event and awaiting it before the
// next (b.N events in all), with synchronous_commit=on. In the same run it
// measures the raw ceiling: multi-row INSERT ... SELECT FROM unnest of the
// journal's average batch size on the same number of connections, without
// the journal, in rounds alternating with the journal's (the VM's fsync
// latency drifts). Run it with a fixed count, e.g.
//
//	go test -run '^$' -bench BenchmarkJournal -benchtime=200000x ./persistence/
//
// BENCH_WRITERS, BENCH_MAXBATCH and BENCH_LINGER (a duration) override the
// journal's defaults for tuning.
func BenchmarkJournal(b *testing.B) {
	opts := persistence.JournalOptions{WriterID: "bench"}
	if v, err := strconv.Atoi(os.Getenv("BENCH_WRITERS")); err == nil {
		opts.Writers = v
	}
	if v, err := strconv.Atoi(os.Getenv("BENCH_MAXBATCH")); err == nil {
		opts.MaxBatch = v
	}
	if v, err := time.ParseDuration(os.Getenv("BENCH_LINGER")); err == nil {
		opts.Linger = v
	}
	writers := opts.Writers
	if writers <= 0 {
		writers = persistence.DefaultWriters
	}

	url := pgtest.NewDatabaseURL(b)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = int32(writers + 2)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()

	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	j := persistence.NewJournal(pool, opts)
	defer j.Close()

	payload := make([]byte, 200)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	const actors = 1000
	total := b.N

	// Warm up connections, statement caches and goroutines, and learn the
	// batch size the journal reaches, with a tenth of the run.
	if _, err := runActors(j, actors, max(total/10, actors), payload, "warm"); err != nil {
		b.Fatal(err)
	}
	batchCount0, batchSum0 := histogram(b, reg, "journal_batch_size")
	warmBatch := max(int(math.Round(batchSum0/float64(max(batchCount0, 1)))), 1)

	// The VM's fsync latency drifts by up to 10x within seconds, so the
	// journal and the raw ceiling run in alternating rounds: raw, journal,
	// raw, journal, ... each raw round at the batch size the journal just
	// reached, and each side's rate is its total over its summed time.
	const rounds = 4
	var (
		lat             [][]time.Duration
		elapsed, rawDur time.Duration
		rawEvents       int
		batch           = warmBatch
		count, sum      = batchCount0, batchSum0
	)
	b.ResetTimer()
	b.StopTimer()
	for r := range rounds {
		n := total / rounds
		if r == rounds-1 {
			n = total - r*(total/rounds)
		}
		d, err := rawInsert(pool, writers, batch, n, payload, fmt.Sprintf("raw%d", r))
		if err != nil {
			b.Fatal(err)
		}
		rawDur += d
		rawEvents += n

		b.StartTimer()
		began := time.Now()
		l, err := runActors(j, actors, n, payload, fmt.Sprintf("bench%d", r))
		elapsed += time.Since(began)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, l...)
		c, s := histogram(b, reg, "journal_batch_size")
		batch = max(int(math.Round((s-sum)/float64(max(c-count, 1)))), 1)
	}
	count, sum = histogram(b, reg, "journal_batch_size")
	avgBatch := (sum - batchSum0) / float64(max(count-batchCount0, 1))

	all := slices.Concat(lat...)
	slices.Sort(all)
	rate := float64(total) / elapsed.Seconds()
	rawRate := float64(rawEvents) / rawDur.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(ms(percentile(all, 0.50)), "p50_ms")
	b.ReportMetric(ms(percentile(all, 0.99)), "p99_ms")
	b.ReportMetric(avgBatch, "avg_batch")
	b.ReportMetric(rawRate, "raw_events/s")
	b.ReportMetric(rate/rawRate, "ratio")
	b.ReportMetric(0, "ns/op")
}

// runActors has actors goroutines, one actor each, append one event at a
// time and await it until total events are written, and returns the
// latencies of each actor's appends.
func runActors(j *persistence.Journal, actors, total int, payload []byte, prefix string) ([][]time.Duration, error) {
	lat := make([][]time.Duration, actors)
	var tickets atomic.Int64
	tickets.Store(int64(total))
	var firstErr atomic.Pointer[error]
	start := make(chan struct{})
	var wg sync.WaitGroup
	for a := range actors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			actor := fmt.Sprintf("%s/%d", prefix, a)
			done := make(chan error, 1)
			ls := make([]time.Duration, 0, total/actors+1)
			<-start
			for seq := int64(1); tickets.Add(-1) >= 0; seq++ {
				t0 := time.Now()
				err := j.AppendAsync(actor, []persistence.Event{{Seq: seq, Type: "SeatHeld", Payload: payload}},
					persistence.ReminderChange{}, func(err error) { done <- err })
				if err == nil {
					err = <-done
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				ls = append(ls, time.Since(t0))
			}
			lat[a] = ls
		}()
	}
	close(start)
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return lat, *p
	}
	return lat, nil
}

// rawInsert writes n events in batches of batch rows on conns connections
// with plain autocommit INSERT ... SELECT FROM unnest, and returns the time.
func rawInsert(pool *pgxpool.Pool, conns, batch, n int, payload []byte, prefix string) (time.Duration, error) {
	const q = `INSERT INTO journal_events (actor_id, seq, event_type, payload, writer_id)
SELECT a, s, t, p, $5 FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bytea[]) AS u(a, s, t, p)`
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	began := time.Now()
	for c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			actors := make([]string, 0, batch)
			seqs := make([]int64, 0, batch)
			types := make([]string, 0, batch)
			payloads := make([][]byte, 0, batch)
			for {
				from := next.Add(int64(batch)) - int64(batch)
				if from >= int64(n) {
					return
				}
				to := min(from+int64(batch), int64(n))
				actors, seqs, types, payloads = actors[:0], seqs[:0], types[:0], payloads[:0]
				for i := from; i < to; i++ {
					actors = append(actors, fmt.Sprintf("%s/%d", prefix, i))
					seqs = append(seqs, 1)
					types = append(types, "SeatHeld")
					payloads = append(payloads, payload)
				}
				if _, err := pool.Exec(context.Background(), q, actors, seqs, types, payloads, fmt.Sprint("raw", c)); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(began), firstErr
}

func histogram(b *testing.B, reg *prometheus.Registry, name string) (count uint64, sum float64) {
	b.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	return 0, 0
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(int(float64(len(sorted))*p), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkBatchStatement measures the cost of the journal's batch
// statements: each iteration writes one batch of 200 one-event calls with
// each variant, in rotating order, on one connection, for actors that all
// have a snapshot row (the pruning fence's probe hits). The variants:
// plain (persistence.InsertSQL, the statement of a journal that does not
// prune, unchanged since before reminders), pruning (InsertPruningSQL, which
// also fences rows at or below a snapshot), and reminders (the plain
// statement with the reminder CTEs, a reminder set for every tenth call).
// The session runs with synchronous_commit=off so that the figures are the
// statement's CPU and WAL cost rather than the disk's fsync latency.
//
//	go test -run '^$' -bench BenchmarkBatchStatement -benchtime=2000x ./persistence/
func BenchmarkBatchStatement(b *testing.B) {
	const (
		batch  = 200
		actors = 10_000
	)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabaseURL(b))
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET synchronous_commit = off`); err != nil {
		b.Fatal(err)
	}
	variants := []string{"plain", "pruning", "reminders"}
	for _, prefix := range variants {
		if _, err := conn.Exec(ctx, `INSERT INTO journal_snapshots (actor_id, seq, snapshot_type, payload, writer_id)
SELECT $1 || '/' || i, 0, 'S', '', 'bench' FROM generate_series(0, $2 - 1) AS i`, prefix, actors); err != nil {
			b.Fatal(err)
		}
	}
	payload := make([]byte, 200)
	ids := make([]string, batch)
	seqs := make([]int64, batch)
	types := make([]string, batch)
	payloads := make([][]byte, batch)
	var remIDs []string
	var remDue []time.Time
	due := time.Now().Add(time.Hour)
	run := func(variant string, i int) time.Duration {
		remIDs, remDue = remIDs[:0], remDue[:0]
		for k := range batch {
			a := (i*batch + k) % actors
			ids[k] = fmt.Sprintf("%s/%d", variant, a)
			seqs[k] = int64((i*batch+k)/actors + 1)
			types[k], payloads[k] = "SeatHeld", payload
			if k%10 == 0 {
				remIDs = append(remIDs, ids[k])
				remDue = append(remDue, due)
			}
		}
		var q string
		args := []any{ids, seqs, types, payloads, "bench"}
		switch variant {
		case "plain":
			q = persistence.InsertSQL
		case "pruning":
			q = persistence.InsertPruningSQL
		default:
			q = persistence.InsertWithRemindersSQL
			args = append(args, remIDs, remDue, []string{})
		}
		t0 := time.Now()
		if _, err := conn.Exec(ctx, q, args...); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	for _, v := range variants {
		run(v, 0) // prepare the statements
	}
	durs := make([]time.Duration, len(variants))
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		for k := range variants {
			v := (i + k) % len(variants)
			durs[v] += run(variants[v], i)
		}
	}
	for v, name := range variants {
		b.ReportMetric(float64(durs[v].Microseconds())/float64(b.N), name+"_us/batch")
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkJournalIdle measures one actor's append after append on an idle
// pipeline: the latency a lone write pays. With the adaptive linger it is
// written at once; a fixed linger would add its full wait to every write.
func BenchmarkJournalIdle(b *testing.B) {
	url := pgtest.NewDatabaseURL(b)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	j := persistence.NewJournal(pool, persistence.JournalOptions{WriterID: "bench", Linger: time.Millisecond})
	defer j.Close()
	ctx := context.Background()
	payload := make([]byte, 200)
	b.ResetTimer()
	for i := range b.N {
		ev := []persistence.Event{{Seq: int64(i + 1), Type: "bench.E", Payload: payload}}
		if err := j.Append(ctx, "idle/1", ev, persistence.ReminderChange{}); err != nil {
			b.Fatal(err)
		}
	}
}
