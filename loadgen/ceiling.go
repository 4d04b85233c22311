package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/valyala/fasthttp"
)

// PGCeilingConfig tunes MeasurePostgres.
type PGCeilingConfig struct {
	// Conns is the number of connections inserting at once; default 4
	// (twice the server's default JOURNAL_WRITERS: the ceiling is what
	// the database takes, not what the server's writers ask of it).
	Conns int
	// Batches are the rows per INSERT to try; default 1, 16, 64, 256.
	Batches []int
	// Each is the length of each point; default 1s.
	Each time.Duration
	// Payload is the size of each row's payload; default 200 bytes.
	Payload int
}

// PGCeiling is the raw durable-write ceiling of a PostgreSQL: multi-row
// inserts of journal-like rows, each statement its own transaction,
// synchronous_commit on, nothing else in between.
type PGCeiling struct {
	RowsPerSec        float64       `json:"rowsPerSec"` // the best point's
	Batch             int           `json:"batch"`      // the best point's rows per INSERT
	Conns             int           `json:"conns"`
	Points            []PGCeilPoint `json:"points"`
	SynchronousCommit string        `json:"synchronousCommit"`
	Fsync             string        `json:"fsync"`
	ServerVersion     string        `json:"serverVersion"`
	Skipped           string        `json:"skipped,omitempty"` // why it was not measured
}

// PGCeilPoint is one batch size's figures.
type PGCeilPoint struct {
	Batch         int     `json:"batch"`
	RowsPerSec    float64 `json:"rowsPerSec"`
	CommitsPerSec float64 `json:"commitsPerSec"`
	CommitLatency Latency `json:"commitLatency"`
}

const ceilingTable = "concertbench_ceiling"

// MeasurePostgres measures the raw durable-write ceiling of the database
// at dbURL in a scratch table shaped like the journal's (created, then
// dropped).
func MeasurePostgres(ctx context.Context, dbURL string, cfg PGCeilingConfig) (*PGCeiling, error) {
	if cfg.Conns <= 0 {
		cfg.Conns = 4
	}
	if len(cfg.Batches) == 0 {
		cfg.Batches = []int{1, 16, 64, 256}
	}
	if cfg.Each <= 0 {
		cfg.Each = time.Second
	}
	if cfg.Payload <= 0 {
		cfg.Payload = 200
	}
	pc, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	pc.MaxConns = int32(cfg.Conns)
	pc.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "SET synchronous_commit = on")
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	out := &PGCeiling{Conns: cfg.Conns}
	for name, dst := range map[string]*string{"synchronous_commit": &out.SynchronousCommit, "fsync": &out.Fsync, "server_version": &out.ServerVersion} {
		if err := pool.QueryRow(ctx, "SHOW "+name).Scan(dst); err != nil {
			return nil, fmt.Errorf("SHOW %s: %w", name, err)
		}
	}
	if _, err := pool.Exec(ctx, `DROP TABLE IF EXISTS `+ceilingTable); err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE `+ceilingTable+` (
    actor_id   text        NOT NULL,
    seq        bigint      NOT NULL,
    event_type text        NOT NULL,
    payload    bytea       NOT NULL,
    writer_id  text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor_id, seq))`); err != nil {
		return nil, fmt.Errorf("create scratch table: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = pool.Exec(dctx, `DROP TABLE IF EXISTS `+ceilingTable)
	}()
	payload := make([]byte, cfg.Payload)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	const q = `INSERT INTO ` + ceilingTable + ` (actor_id, seq, event_type, payload, writer_id)
SELECT a, s, t, p, $5 FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bytea[]) AS u(a, s, t, p)`
	for _, batch := range cfg.Batches {
		rec := NewRecorder()
		var rows, commits atomic.Int64
		var firstErr atomic.Pointer[error]
		end := time.Now().Add(cfg.Each)
		var wg sync.WaitGroup
		began := time.Now()
		for ci := range cfg.Conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				actors := make([]string, batch)
				seqs := make([]int64, batch)
				types := make([]string, batch)
				payloads := make([][]byte, batch)
				for n := 0; time.Now().Before(end) && ctx.Err() == nil; n++ {
					for i := range batch {
						actors[i] = "seat/" + strconv.Itoa(batch) + "/" + strconv.Itoa(ci) + "/" + strconv.Itoa(n*batch+i)
						seqs[i], types[i], payloads[i] = 1, "SeatHeld", payload
					}
					t0 := time.Now()
					if _, err := pool.Exec(ctx, q, actors, seqs, types, payloads, "concertbench"); err != nil {
						firstErr.CompareAndSwap(nil, &err)
						return
					}
					rec.Record(ci, time.Since(t0))
					rows.Add(int64(batch))
					commits.Add(1)
				}
			}()
		}
		wg.Wait()
		if e := firstErr.Load(); e != nil {
			return nil, fmt.Errorf("insert: %w", *e)
		}
		secs := time.Since(began).Seconds()
		p := PGCeilPoint{Batch: batch, RowsPerSec: float64(rows.Load()) / secs, CommitsPerSec: float64(commits.Load()) / secs,
			CommitLatency: rec.Summary()}
		out.Points = append(out.Points, p)
		if p.RowsPerSec > out.RowsPerSec {
			out.RowsPerSec, out.Batch = p.RowsPerSec, batch
		}
	}
	return out, ctx.Err()
}

// HTTPCeiling is the request rate of a trivial route.
type HTTPCeiling struct {
	Target         string           `json:"target"`
	Path           string           `json:"path"`
	Conns          int              `json:"conns"`
	Seconds        float64          `json:"seconds"`
	Requests       int64            `json:"requests"`
	RequestsPerSec float64          `json:"requestsPerSec"`
	Latency        Latency          `json:"latency"`
	Errors         map[string]int64 `json:"errors,omitempty"`
	Note           string           `json:"note,omitempty"`
}

// MeasureHTTP sends GET path on conns connections in closed loop for d and
// returns the rate of 200 answers.
func MeasureHTTP(ctx context.Context, c *Client, path string, conns int, d time.Duration) (*HTTPCeiling, error) {
	if conns <= 0 {
		conns = 64
	}
	warmConns(ctx, c, conns, func(int) int64 { return 0 })
	rec := NewRecorder()
	var ok atomic.Int64
	var mu sync.Mutex
	errs := map[string]int64{}
	p := []byte(path)
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for wi := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := c.newConn()
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				status, err := w.do(int64(wi+1), fasthttp.MethodGet, p, nil, nil)
				rec.Record(wi, time.Since(t0))
				if err == nil && status == 200 {
					ok.Add(1)
					continue
				}
				mu.Lock()
				errs[errOr(status, "", err)]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	out := &HTTPCeiling{Target: c.Target(), Path: path, Conns: conns, Seconds: secs, Requests: ok.Load(),
		RequestsPerSec: float64(ok.Load()) / secs, Latency: rec.Summary()}
	if len(errs) > 0 {
		out.Errors = errs
	}
	if out.Requests == 0 {
		return out, errors.New("GET " + path + ": no 200 answer")
	}
	return out, ctx.Err()
}

// MeasureGenerator measures the load generator's own ceiling: the same
// client against a trivial fasthttp server in this process, on a loopback
// port. Both share the machine's cores, so it is a lower bound of what the
// generator alone could send.
func MeasureGenerator(ctx context.Context, conns int, d time.Duration) (*HTTPCeiling, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	body := []byte(`{"status":"ok"}`)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
	}}
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Shutdown() }()
	u, _ := url.Parse("http://" + ln.Addr().String())
	c := NewClient(u, ClientOptions{MaxConns: conns + 16, Timeout: 10 * time.Second})
	defer c.CloseIdle()
	out, err := MeasureHTTP(ctx, c, "/healthz", conns, d)
	if out != nil {
		out.Target = "in-process fasthttp server"
		out.Note = "generator and trivial server share the machine's cores: a lower bound of the generator alone"
	}
	return out, err
}

// BurstRounds is how many times MeasureBurst sends its burst; it keeps the
// fastest, as a ceiling should: one burst lasts tens of milliseconds, so a
// single one is at the mercy of one collection or one late wake-up (single
// 1,000-fan bursts here ranged 15k–50k req/s on the same server).
const BurstRounds = 3

// MeasureBurst is the trivial route in a burst's shape: n goroutines, one
// connection each (warmed), send GET path at the same instant, as the
// hot-seat burst sends its holds (runArrivals, closed loop, n workers),
// BurstRounds times. RequestsPerSec is n ÷ the time from a burst's start to
// its last answer, of the fastest round, so a hot-seat run's answers/s over
// it is the hold path's share of what the same generator gets from the same
// server in the same shape; key gives unit i's routing key (its user, as
// the holds that follow will use). Errors: ctx's, or a round with no 200
// answer at all.
func MeasureBurst(ctx context.Context, c *Client, path string, n int, key func(int) int64) (*HTTPCeiling, error) {
	var best *HTTPCeiling
	for range BurstRounds {
		b, err := burstOnce(ctx, c, path, n, key)
		if err != nil {
			return b, err
		}
		if best == nil || b.RequestsPerSec > best.RequestsPerSec {
			best = b
		}
	}
	return best, nil
}

// burstOnce sends one burst of MeasureBurst.
func burstOnce(ctx context.Context, c *Client, path string, n int, key func(int) int64) (*HTTPCeiling, error) {
	rec := NewRecorder()
	var ok, last atomic.Int64
	var mu sync.Mutex
	errs := map[string]int64{}
	p := []byte(path)
	start := time.Now().Add(50 * time.Millisecond)
	runArrivals(ctx, n, n, 0, start, func(worker, unit int, _ time.Time) {
		w := c.newConn()
		status, err := w.do(key(unit), fasthttp.MethodGet, p, nil, nil)
		rec.Record(worker, time.Since(start)) // every unit means to send at the start
		latestAnswer(&last, start)
		if err == nil && status == 200 {
			ok.Add(1)
			return
		}
		mu.Lock()
		errs[errOr(status, "", err)]++
		mu.Unlock()
	})
	secs := time.Duration(last.Load()).Seconds()
	out := &HTTPCeiling{Target: c.Target(), Path: path, Conns: n, Seconds: secs, Requests: ok.Load(), Latency: rec.Summary(),
		Note: fmt.Sprintf("one request per connection, all sent at once; rate = requests ÷ time from the burst's start to its last answer; the fastest of %d bursts", BurstRounds)}
	if secs > 0 {
		out.RequestsPerSec = float64(ok.Load()) / secs
	}
	if len(errs) > 0 {
		out.Errors = errs
	}
	if out.Requests == 0 {
		return out, errors.New("GET " + path + " burst: no 200 answer")
	}
	return out, ctx.Err()
}

// latestAnswer raises last (ns after start) to now.
func latestAnswer(last *atomic.Int64, start time.Time) {
	at := int64(time.Since(start))
	for {
		old := last.Load()
		if at <= old || last.CompareAndSwap(old, at) {
			return
		}
	}
}
