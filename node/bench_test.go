package node_test

import (
	"bufio"
	"context"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/concert/ticketing/loadgen"
	"github.com/concert/ticketing/node"
	"github.com/concert/ticketing/persistence/pgtest"
)

// The benchmarks run the loadgen scenarios against a real node in this
// process: its PostgreSQL is pgtest's throwaway server, its HTTP a loopback
// listener, and the generator shares the machine's cores with both — as
// it would on a developer's two-core box. Each load phase lasts
// -bench.phase; b.N is not used (one fixed-length run reports its figures
// with b.ReportMetric; ns/op is the wall time per successful hold).
//
//	go test ./node -run '^$' -bench BenchmarkHoldPath -benchtime 1x
//	go test ./node -run '^$' -bench BenchmarkHoldPath -benchtime 1x -cpuprofile cpu.out
var (
	benchPhase = flag.Duration("bench.phase", 10*time.Second, "length of each load phase of the node benchmarks")
	benchFans  = flag.Int("bench.fans", 10000, "fans of BenchmarkHotOnSale")
	// Node settings, to compare tunings of the hold path (0: the node's default).
	benchWriters  = flag.Int("bench.writers", 0, "journal writers of the benchmarked node")
	benchDBConns  = flag.Int("bench.dbconns", 0, "PostgreSQL pool size of the benchmarked node")
	benchSnapshot = flag.Int("bench.snapshot", 0, "events between snapshots of the benchmarked node")
	benchTrace    = flag.Bool("bench.trace", false, "log holds/s and journal batch latencies every second")
	benchCluster  = flag.String("bench.cluster", "", "placement of the benchmarked node: local (default) or single (a one-member cluster)")
)

// startBenchNode starts a node on a fresh database and serves it on a
// loopback port; it is shut down in b.Cleanup.
func startBenchNode(b *testing.B, activeTokens int) *loadgen.Client {
	b.Helper()
	dbURL := pgtest.NewDatabaseURL(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := node.Start(ctx, node.Config{
		DatabaseURL:  dbURL,
		AdminKey:     "bench",
		ActiveTokens: activeTokens,
		HoldTTL:      5 * time.Minute,
		HoldLimit:    4,
		Logger:       slog.New(slog.DiscardHandler),

		JournalWriters: *benchWriters,
		DBMaxConns:     *benchDBConns,
		SnapshotEvery:  *benchSnapshot,
		Cluster:        node.ClusterConfig{Provider: *benchCluster},
	})
	if err != nil {
		b.Fatalf("start node: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = n.Shutdown(context.Background())
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- n.Serve(ln) }()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			b.Errorf("shutdown: %v", err)
		}
		<-served
	})
	if *benchTrace {
		stop := traceNode(b, "http://"+ln.Addr().String()+"/metrics")
		b.Cleanup(stop)
	}
	target, err := loadgen.CheckTarget("http://"+ln.Addr().String(), false)
	if err != nil {
		b.Fatal(err)
	}
	c := loadgen.NewClient(target, loadgen.ClientOptions{AdminKey: "bench", MaxConns: activeTokens + 64, Timeout: 10 * time.Second})
	b.Cleanup(c.CloseIdle)
	return c
}

func report(b *testing.B, r *loadgen.Result) {
	b.Helper()
	var s strings.Builder
	_ = r.WriteReport(&s)
	b.Log("\n" + s.String())
}

// BenchmarkHoldPath measures the hold path: 1,000 users over 100 dates of
// 50 seats hold a random seat and cancel it, first closed loop (the
// throughput), then open loop at half the closed-loop hold rate (the p99 at
// a steady offered load, from each hold's intended send time).
// Targets on a two-core machine: ≥ 20,000 holds/s; p99 ≤ 50 ms at half.
func BenchmarkHoldPath(b *testing.B) {
	const users, dates, seats = 1000, 100, 50
	c := startBenchNode(b, 2000)
	ctx := context.Background()
	fx, err := loadgen.Setup(ctx, c, loadgen.SetupConfig{Dates: dates, SeatsPerDate: seats, Users: users})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("machine: %s", loadgen.Machine())

	b.ResetTimer()
	closed, err := loadgen.RunHolds(ctx, c, fx, loadgen.HoldsConfig{Duration: *benchPhase})
	if err != nil {
		b.Fatal(err)
	}
	report(b, closed)
	checkErrors(b, closed)
	rate := closed.HoldsPerSec / 2
	if rate < 1 {
		b.Fatalf("closed loop made %d holds: nothing to pace the open loop on", closed.Holds)
	}
	open, err := loadgen.RunHolds(ctx, c, fx, loadgen.HoldsConfig{Duration: *benchPhase, Rate: rate})
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	report(b, open)
	checkErrors(b, open)

	if closed.Holds > 0 {
		b.ReportMetric(closed.ElapsedSeconds*1e9/float64(closed.Holds), "ns/op")
	}
	b.ReportMetric(closed.HoldsPerSec, "holds/s")
	b.ReportMetric(closed.AttemptsPerSec, "attempts/s")
	b.ReportMetric(closed.HoldLatency.P50Ms, "p50_ms")
	b.ReportMetric(closed.HoldLatency.P99Ms, "p99_ms")
	b.ReportMetric(open.OfferedRate, "open_rate/s")
	b.ReportMetric(open.HoldsPerSec, "open_holds/s")
	b.ReportMetric(open.HoldLatency.P50Ms, "open_p50_ms")
	b.ReportMetric(open.HoldLatency.P99Ms, "open_p99_ms")
}

// checkErrors fails the benchmark when more than 0.1% of the hold attempts
// went wrong: figures of a failing server are not a benchmark.
func checkErrors(b *testing.B, r *loadgen.Result) {
	b.Helper()
	if n := r.ErrorCount(); n*1000 > r.Attempts {
		b.Errorf("%d errors in %d attempts: %v", n, r.Attempts, r.Errors)
	}
}

// BenchmarkHotOnSale measures an on-sale: 10,000 fans race for the 50
// seats of one date and the winners pay. Exactly 50 must win.
func BenchmarkHotOnSale(b *testing.B) {
	const seats = 50
	fans := *benchFans
	c := startBenchNode(b, fans)
	ctx := context.Background()
	fx, err := loadgen.Setup(ctx, c, loadgen.SetupConfig{Dates: 1, SeatsPerDate: seats, Users: fans, Concurrency: 128})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("machine: %s", loadgen.Machine())

	// The timer runs through the setup on purpose: a timed region of a few
	// seconds keeps the framework at b.N = 1 instead of re-running the whole
	// on-sale with growing b.N. ns/op is overridden with the sell-out time.
	r, err := loadgen.RunHot(ctx, c, fx, loadgen.HotConfig{Workers: 500, MaxDuration: 45 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	report(b, r)
	if !r.OK() || r.Winners != seats {
		b.Fatalf("%d winners for %d seats: %v", r.Winners, seats, r.Violations)
	}
	b.ReportMetric(r.SellOutSeconds*1e9, "ns/op")
	b.ReportMetric(r.SellOutSeconds, "sellout_s")
	b.ReportMetric(r.AttemptsPerSec, "attempts/s")
	b.ReportMetric(r.HoldLatency.P99Ms, "hold_p99_ms")
	b.ReportMetric(r.PaymentLatency.P50Ms, "pay_p50_ms")
	b.ReportMetric(r.PaymentLatency.P99Ms, "pay_p99_ms")
}

// traceNode logs, every second, the holds answered 200, the journal
// batches written and how many took longer than 16, 64 and 256 ms, and the
// GC cycles, from the node's /metrics (-bench.trace).
func traceNode(b *testing.B, url string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	scrape := func() map[string]float64 {
		m := map[string]float64{}
		resp, err := http.Get(url)
		if err != nil {
			return m
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			for key, prefix := range map[string]string{
				"holds":   `http_request_duration_seconds_count{method="POST",route="/reservations",status="200"}`,
				"batches": "journal_batch_seconds_count",
				"le16":    `journal_batch_seconds_bucket{le="0.016"}`,
				"le64":    `journal_batch_seconds_bucket{le="0.064"}`,
				"le256":   `journal_batch_seconds_bucket{le="0.256"}`,
				"events":  "journal_batch_size_sum",
				"gc":      "go_gc_duration_seconds_count",
			} {
				if strings.HasPrefix(line, prefix+" ") {
					v, _ := strconv.ParseFloat(strings.TrimSpace(line[len(prefix):]), 64)
					m[key] = v
				}
			}
		}
		return m
	}
	go func() {
		defer close(finished)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		prev := scrape()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			cur := scrape()
			d := func(k string) float64 { return cur[k] - prev[k] }
			b.Logf("trace holds %6.0f events %6.0f batches %5.0f >16ms %4.0f >64ms %4.0f >256ms %4.0f gc %3.0f",
				d("holds"), d("events"), d("batches"), d("batches")-d("le16"), d("batches")-d("le64"), d("batches")-d("le256"), d("gc"))
			prev = cur
		}
	}()
	return func() { close(done); <-finished }
}
