package chaos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	stdhttp "net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/concert/ticketing/chaos"
	"github.com/concert/ticketing/persistence/pgtest"
)

// call sends one request and returns its status, Retry-After and body.
func call(ctx context.Context, method, u, body string) (int, string, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, _ := stdhttp.NewRequestWithContext(ctx, method, u, rd)
	req.Header.Set("Content-Type", "application/json")
	res, err := (&stdhttp.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Retry-After"), b, nil
}

// runFaults runs the chaos load against a server on dbURL with fault, and
// fails the test on any finding. Its history is saved on failure.
func runFaults(t *testing.T, cfg chaos.Config) *chaos.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir := t.TempDir()
	if *outFlag != "" {
		dir = *outFlag
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin, err := chaos.Build(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "concertd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cfg.Bin, cfg.ServerLog, cfg.Logf = bin, logFile, t.Logf
	if cfg.CheckTimeout == 0 {
		cfg.CheckTimeout = time.Minute
	}
	rep, err := chaos.Run(ctx, cfg)
	if err != nil {
		tail, _ := os.ReadFile(logFile.Name())
		if len(tail) > 3000 {
			tail = tail[len(tail)-3000:]
		}
		t.Fatalf("chaos run: %v\n--- server log (tail) ---\n%s", err, tail)
	}
	t.Log("\n" + rep.Summary())
	if *outFlag != "" {
		files, err := rep.Save(dir)
		t.Logf("saved %v (err %v)", files, err)
	}
	if rep.Failed() {
		out, _ := os.MkdirTemp("", "concert-fault-")
		files, _ := rep.Save(out)
		_ = os.Rename(logFile.Name(), filepath.Join(out, "concertd.log"))
		t.Fatalf("the run found a fault; saved %v in %s", files, out)
	}
	if rep.Faults != cfg.Faults {
		t.Fatalf("survived %d faults of %d", rep.Faults, cfg.Faults)
	}
	return rep
}

// pgOutage stops PostgreSQL (pg_ctl stop -m immediate: connections cut, no
// checkpoint) and starts it again. While it is down it probes the API: a
// read of state held in memory (the balance of a wallet with nothing to
// write) still answers 200, and a write answers 503 with Retry-After within
// the request timeout.
type pgOutage struct {
	t         *testing.T
	srv       *pgtest.Server
	bystander int64 // a user outside the load, whose wallet is in memory
	balance   int64
	probes    int
}

func (f *pgOutage) Name() string { return "database outage" }

// addBystander is the run's OnReady: a user outside the load, charged 1000,
// whose wallet stays in memory so the outage's probes can read it.
func (f *pgOutage) addBystander(ctx context.Context, base string) error {
	st, _, b, err := call(ctx, "POST", base+"/users", `{"name":"bystander"}`)
	var u struct{ ID int64 }
	if err != nil || st != 201 || json.Unmarshal(b, &u) != nil {
		return fmt.Errorf("bystander: %d %v %s", st, err, b)
	}
	f.bystander = u.ID
	st, _, b, err = call(ctx, "PATCH", base+"/customers/point", fmt.Sprintf(`{"userId":%d,"chargeBalance":1000}`, u.ID))
	if err != nil || st != 200 {
		return fmt.Errorf("bystander charge: %d %v %s", st, err, b)
	}
	f.balance = 1000
	return nil
}

func (f *pgOutage) Inject(ctx context.Context, k int, base string) error {
	// Wake the bystander's wallet (it may have been recovered anew).
	st, _, b, err := call(ctx, "GET", fmt.Sprintf("%s/customers/point?userId=%d", base, f.bystander), "")
	if err != nil || st != 200 {
		return fmt.Errorf("bystander read before the outage: %d %v %s", st, err, b)
	}
	if err := f.srv.Stop(); err != nil {
		return err
	}
	st, _, b, err = call(ctx, "GET", fmt.Sprintf("%s/customers/point?userId=%d", base, f.bystander), "")
	var p struct{ Balance int64 }
	_ = json.Unmarshal(b, &p)
	if err != nil || st != 200 || p.Balance != f.balance {
		return fmt.Errorf("outage %d: a read of a wallet in memory answered %d %v %s, want 200 with balance %d", k, st, err, b, f.balance)
	}
	start := time.Now()
	st, retry, b, err := call(ctx, "PATCH", base+"/customers/point", fmt.Sprintf(`{"userId":%d,"chargeBalance":1}`, f.bystander))
	took := time.Since(start)
	if err != nil || st != 503 || retry == "" {
		return fmt.Errorf("outage %d: a write answered %d (Retry-After %q) %v %s, want 503 with Retry-After", k, st, retry, err, b)
	}
	if took > 5*time.Second {
		return fmt.Errorf("outage %d: the write's 503 took %s, beyond the request timeout", k, took)
	}
	f.probes += 2
	return nil
}

func (f *pgOutage) Heal(ctx context.Context, _ int, base string) error {
	if err := f.srv.Start(ctx); err != nil {
		return err
	}
	// The probe's charge may or may not have happened: learn the balance
	// again once the service is back.
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		st, _, b, err := call(ctx, "GET", fmt.Sprintf("%s/customers/point?userId=%d", base, f.bystander), "")
		if err == nil && st == 200 {
			var p struct{ Balance int64 }
			_ = json.Unmarshal(b, &p)
			f.balance = p.Balance
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the bystander's wallet cannot be read a minute after the database came back")
}

// TestDatabaseOutageChaos stops PostgreSQL under the mixed load and starts
// it again, several times, with one server process throughout: writes get
// 503 with Retry-After during each outage, a read of in-memory state keeps
// working, the service recovers by itself, and the history passes both
// checks (nothing acknowledged is lost). SIGTERM under load is
// cmd/concertd/drain_test.go's TestGracefulStopAnswersEveryRequest.
func TestDatabaseOutageChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("runs its own PostgreSQL and a server process")
	}
	srv := pgtest.NewServer(t)
	f := &pgOutage{t: t, srv: srv}
	cfg := chaos.Config{
		Seed: *seedFlag, Fault: f, Faults: 3, MinOps: 60, MaxOps: 160,
		Jitter: 30 * time.Millisecond, MaxDown: time.Second,
		Users: 3, ClientsPerUser: 2, Dates: 2, SeatsPerDate: 20, Price: 300,
		DatabaseURL: srv.NewDatabaseURL(t),
		// Keep the bystander's wallet in memory across the run.
		Settings: []string{"ACTOR_IDLE_TTL=30m", "REQUEST_TIMEOUT=2s"},
		OnReady:  f.addBystander,
	}
	if *long {
		cfg.Faults, cfg.Users, cfg.ClientsPerUser, cfg.Dates, cfg.SeatsPerDate = 15, 5, 3, 6, 60
	}
	rep := runFaults(t, cfg)
	t.Logf("%d outages survived; %d probes during them", rep.Faults, f.probes)
}

// proxyFaults delays, stalls and cuts the connections between the server
// and PostgreSQL through a proxy, in turn. A stall lasts longer than a
// request may take.
type proxyFaults struct {
	p     *chaos.Proxy
	stall time.Duration
}

func (f *proxyFaults) Name() string { return "slow, stalled or cut database connection" }

func (f *proxyFaults) Inject(_ context.Context, k int, _ string) error {
	switch k % 3 {
	case 1:
		f.p.SetDelay(150 * time.Millisecond)
	case 2:
		f.p.Stall()
		time.Sleep(f.stall)
	case 0:
		f.p.Cut()
	}
	return nil
}

func (f *proxyFaults) Heal(context.Context, int, string) error {
	f.p.SetDelay(0)
	f.p.Resume()
	return nil
}

// TestDatabaseConnectionChaos runs the mixed load with the server's
// database connections going through a proxy that delays every packet,
// stalls (holds every byte) for longer than a request may take, or cuts
// every connection. Every request ends within its deadline (the request
// timeout, plus the time to answer), the service recovers by itself, the
// history passes both checks, and once the load is over the server's
// goroutines and heap are back near where they were before it.
func TestDatabaseConnectionChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a server process")
	}
	const requestTimeout = 2 * time.Second
	dbURL := pgtest.NewDatabaseURL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := chaos.NewProxy(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	u.Host = proxy.Addr()

	var goroutines, heap [2]float64
	sample := func(i int) func(ctx context.Context, base string) error {
		return func(ctx context.Context, base string) error {
			// Let timers and idle connections settle first.
			time.Sleep(2 * time.Second)
			var err error
			if goroutines[i], err = chaos.Metric(ctx, base, "go_goroutines"); err != nil {
				return err
			}
			heap[i], err = chaos.Metric(ctx, base, "go_memstats_heap_inuse_bytes")
			return err
		}
	}
	cfg := chaos.Config{
		Seed: *seedFlag, Fault: &proxyFaults{p: proxy, stall: requestTimeout + 5*time.Second}, Faults: 6, MinOps: 60, MaxOps: 160,
		Jitter: 30 * time.Millisecond, MaxDown: time.Second,
		Users: 3, ClientsPerUser: 2, Dates: 2, SeatsPerDate: 20, Price: 300,
		DatabaseURL: u.String(),
		Settings:    []string{"REQUEST_TIMEOUT=" + requestTimeout.String(), "ACTOR_IDLE_TTL=1s"},
		OnReady:     sample(0),
		AfterLoad:   sample(1),
	}
	if *long {
		cfg.Faults, cfg.Users, cfg.ClientsPerUser, cfg.Dates, cfg.SeatsPerDate = 30, 5, 3, 6, 60
	}
	rep := runFaults(t, cfg)
	t.Logf("goroutines %v → %v, heap in use %.1f → %.1f MiB", goroutines[0], goroutines[1], heap[0]/(1<<20), heap[1]/(1<<20))
	// The request timeout, plus a margin for dialing and answering on a
	// busy 2-core machine under -race; still 2s short of a stall, so a
	// request that waited the stall out rather than its deadline fails.
	if limit := requestTimeout + 3*time.Second; rep.SlowestAnswer > limit {
		t.Errorf("a request took %s, beyond its deadline (%s)", rep.SlowestAnswer, limit)
	}
	if goroutines[1] > goroutines[0]+30 {
		t.Errorf("goroutines grew from %v to %v: a leak", goroutines[0], goroutines[1])
	}
	if heap[1] > heap[0]+64<<20 {
		t.Errorf("heap in use grew from %.1f to %.1f MiB", heap[0]/(1<<20), heap[1]/(1<<20))
	}
}
