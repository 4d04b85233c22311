package actors

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/actors/actortest"
	"github.com/concert/ticketing/cluster"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// The memory requirement: 1,000 dates (50,000 seats) and 100,000 wallets in
// memory at once stay under 1 GiB resident; idle actors are passivated and
// cost nothing.
//
// Run it with
//
//	go test -run '^$' -bench BenchmarkMemoryFootprint -benchtime 1x ./actors/
//
// It journals to actortest.MemJournal, not PostgreSQL: the requirement is
// about the actors' own memory, and a database would add a connection pool
// and the pgtest server's noise without changing what an actor keeps. The
// in-memory journal does keep every event and snapshot on the heap, which a
// real deployment keeps in PostgreSQL, so the figures below are an upper
// bound; the passivation phase measures the journal's share separately.

const (
	memDates        = 1_000
	memSeatsPerDate = 50
	memHoldsPerDate = 5 // live holds per date, so a seat actor has real state
	memWallets      = 100_000
	memWorkers      = 64 // concurrent callers
	memPassivating  = 20_000
	memIdleTTL      = 200 * time.Millisecond // passivation phase
	memLimitRSS     = 1 << 30
	memSeatPrice    = 1_000
)

// memCatalog is a SeatCatalog that synthesises options 1..options with
// seatsPer seats each (seat id = option*1000 + seat number), so the catalog
// costs no memory of its own: in production it is a database.
type memCatalog struct{ options, seatsPer int64 }

var _ SeatCatalog = memCatalog{}

func (c memCatalog) Option(_ context.Context, id int64) (persistence.ConcertOption, error) {
	if id < 1 || id > c.options {
		return persistence.ConcertOption{}, fmt.Errorf("option %d: %w", id, persistence.ErrNotFound)
	}
	return persistence.ConcertOption{
		ID: id, ConcertID: (id-1)/10 + 1, Seats: int(c.seatsPer),
		Date: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(id)),
	}, nil
}

func (c memCatalog) Seats(_ context.Context, id int64) ([]persistence.Seat, error) {
	if id < 1 || id > c.options {
		return nil, nil
	}
	seats := make([]persistence.Seat, 0, c.seatsPer)
	for no := int64(1); no <= c.seatsPer; no++ {
		seats = append(seats, persistence.Seat{ID: memSeatID(id, no), OptionID: id,
			ConcertID: (id-1)/10 + 1, SeatNo: int(no), Price: memSeatPrice})
	}
	return seats, nil
}

func memSeatID(option, no int64) int64 { return option*1000 + no }

// memSample is the process's memory after a full collection.
type memSample struct {
	heapInuse uint64 // runtime.MemStats.HeapInuse
	rss       uint64 // VmRSS
	hwm       uint64 // VmHWM: peak RSS so far
}

// memMeasure collects garbage, returns freed pages to the OS (so that RSS
// follows the live heap rather than the runtime's retained spans) and reads
// the heap and /proc/self/status.
func memMeasure(tb testing.TB) memSample {
	tb.Helper()
	runtime.GC()
	debug.FreeOSMemory() // a second GC, then scavenges
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := memSample{heapInuse: ms.HeapInuse}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		tb.Fatalf("read RSS: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			tb.Fatalf("parse %s %q: %v", key, val, err)
		}
		if key == "VmRSS" {
			s.rss = kb << 10
		} else {
			s.hwm = kb << 10
		}
	}
	if s.rss == 0 {
		tb.Fatal("no VmRSS in /proc/self/status")
	}
	return s
}

// memWriteHeapProfile writes the current heap profile to path.
func memWriteHeapProfile(tb testing.TB, path string) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatalf("heap profile: %v", err)
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		tb.Fatalf("heap profile: %v", err)
	}
	if err := f.Close(); err != nil {
		tb.Fatalf("heap profile: %v", err)
	}
	tb.Logf("heap profile at the peak written to %s", path)
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// diff is a-b, clamped at zero (the heap may shrink below a baseline).
func diff(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// memProcesses counts the processes in the actor system's registry: the
// live actors, plus the system's own (guardians, managers, futures in
// flight).
func memProcesses(system *actor.ActorSystem) int {
	n := 0
	for _, m := range system.ProcessRegistry.LocalPIDs.LocalPIDs {
		n += m.Count()
	}
	return n
}

// memCluster is an actor system with seat and wallet actors on one journal.
type memCluster struct {
	journal *actortest.MemJournal
	system  *actor.ActorSystem
	local   *cluster.Local
	once    sync.Once
}

func newMemCluster(idleTTL time.Duration) *memCluster {
	logger := seatQuietLogger()
	c := &memCluster{journal: actortest.NewMemJournal()}
	c.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger }))
	router := &seatLateRouter{}
	c.local = cluster.NewLocal(c.system, map[string]cluster.Producer{
		"seat": NewSeatProducer(SeatConfig{
			Journal: c.journal, Catalog: memCatalog{options: memDates, seatsPer: memSeatsPerDate}, Router: router,
			HoldTTL: time.Hour, IdleTTL: idleTTL, Logger: logger,
		}),
		"wallet": NewWalletProducer(WalletConfig{Journal: c.journal, IdleTTL: idleTTL, Logger: logger}),
	})
	router.r.Store(c.local)
	return c
}

func (c *memCluster) stop() { c.once.Do(func() { c.local.Stop(); c.system.Shutdown() }) }

// run calls fn(0..n-1) from memWorkers goroutines and returns the first
// error.
func (c *memCluster) run(n int, fn func(ctx context.Context, i int) error) error {
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	for range memWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := fn(ctx, i)
				cancel()
				if err != nil {
					errOnce.Do(func() { first = err })
					next.Store(int64(n)) // stop the others
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

func (c *memCluster) request(ctx context.Context, kind string, identity int64, msg proto.Message) error {
	_, err := c.local.Request(ctx, kind, strconv.FormatInt(identity, 10), msg)
	return err
}

// activateSeats holds memHoldsPerDate seats on each of the dates.
func (c *memCluster) activateSeats(dates int) error {
	return c.run(dates*memHoldsPerDate, func(ctx context.Context, i int) error {
		option, k := int64(i/memHoldsPerDate+1), int64(i%memHoldsPerDate)
		return c.request(ctx, "seat", option, &messages.HoldSeat{UserId: int64(i + 1), SeatId: memSeatID(option, 1+k*7)})
	})
}

// activateWallets charges each of users first+1..first+n once.
func (c *memCluster) activateWallets(first, n int) error {
	return c.run(n, func(ctx context.Context, i int) error {
		user := int64(first + i + 1)
		return c.request(ctx, "wallet", user, &messages.ChargePoints{UserId: user, Amount: 10_000})
	})
}

// BenchmarkMemoryFootprint measures the memory of 1,000 seat actors (50,000
// seats, 5,000 live holds) and 100,000 wallet actors alive at once, asserts
// that the process stays under 1 GiB resident, then shows that passivated
// wallets give their memory back. It does its work once, whatever b.N: run
// it with -benchtime 1x.
func BenchmarkMemoryFootprint(b *testing.B) {
	b.Logf("GOMAXPROCS=%d NumCPU=%d", runtime.GOMAXPROCS(0), runtime.NumCPU())

	// ---- Phase 1: everything alive at once. ----
	// An hour of IdleTTL keeps the receive-timeout timers armed, as in
	// production, while nothing passivates during the measurement.
	c := newMemCluster(time.Hour)
	b.Cleanup(func() {
		if c != nil {
			c.stop()
		}
	})
	procs0 := memProcesses(c.system)
	base := memMeasure(b)

	began := time.Now()
	if err := c.activateSeats(memDates); err != nil {
		b.Fatalf("activate seats: %v", err)
	}
	seatsTook := time.Since(began)
	afterSeats := memMeasure(b)

	began = time.Now()
	if err := c.activateWallets(0, memWallets); err != nil {
		b.Fatalf("activate wallets: %v", err)
	}
	walletsTook := time.Since(began)
	all := memMeasure(b)

	if live := memProcesses(c.system) - procs0; live != memDates+memWallets {
		b.Fatalf("%d live actors, want %d: some passivated or were never started", live, memDates+memWallets)
	}
	if path := os.Getenv("MEMFOOTPRINT_HEAPPROFILE"); path != "" {
		// The heap profile at the peak, for go tool pprof
		// -sample_index=inuse_space (a -memprofile is written only after the
		// benchmark, when these actors are gone).
		memWriteHeapProfile(b, path)
	}

	heap := diff(all.heapInuse, base.heapInuse)
	rss := diff(all.rss, base.rss)
	perSeat := float64(diff(afterSeats.heapInuse, base.heapInuse)) / memDates
	perWallet := float64(diff(all.heapInuse, afterSeats.heapInuse)) / memWallets
	b.Logf("activated %d seat actors in %v, %d wallets in %v", memDates, seatsTook.Round(time.Millisecond),
		memWallets, walletsTook.Round(time.Millisecond))
	b.Logf("baseline: heap %.1f MiB, RSS %.1f MiB", mib(base.heapInuse), mib(base.rss))
	b.Logf("all alive: heap %.1f MiB (+%.1f), RSS %.1f MiB (+%.1f), peak RSS %.1f MiB",
		mib(all.heapInuse), mib(heap), mib(all.rss), mib(rss), mib(all.hwm))
	b.Logf("≈ %.0f B per seat actor (%d seats, %d holds), ≈ %.0f B per wallet (MemJournal's events included)",
		perSeat, memSeatsPerDate, memHoldsPerDate, perWallet)
	b.ReportMetric(mib(rss), "rss_MiB")
	b.ReportMetric(mib(all.rss), "rss_total_MiB")
	b.ReportMetric(mib(all.hwm), "rss_peak_MiB")
	b.ReportMetric(mib(heap), "heap_MiB")
	b.ReportMetric(perSeat, "bytes_per_seat_actor")
	b.ReportMetric(perWallet, "bytes_per_wallet")
	if all.rss >= memLimitRSS {
		b.Fatalf("resident set %.1f MiB with %d dates and %d wallets alive, want < 1024 MiB", mib(all.rss), memDates, memWallets)
	}
	c.stop()
	c = nil

	// ---- Phase 2: idle wallets passivate and give their memory back. ----
	base2 := memMeasure(b)
	b.Logf("after stopping that system: heap %.1f MiB, RSS %.1f MiB", mib(base2.heapInuse), mib(base2.rss))
	p := newMemCluster(memIdleTTL)
	b.Cleanup(func() {
		if p != nil {
			p.stop()
		}
	})
	procs0 = memProcesses(p.system)
	empty := memMeasure(b) // an actor system with no actors yet
	if err := p.activateWallets(0, memPassivating); err != nil {
		b.Fatalf("activate wallets: %v", err)
	}
	began = time.Now()
	actortest.Eventually(b, 60*time.Second, func() bool { return memProcesses(p.system) <= procs0 },
		"the %d wallets to passivate", memPassivating)
	b.Logf("%d wallets passivated %v after the last charge (IdleTTL %v)", memPassivating,
		time.Since(began).Round(time.Millisecond), memIdleTTL)
	passivated := memMeasure(b)
	if path := os.Getenv("MEMFOOTPRINT_HEAPPROFILE"); path != "" {
		memWriteHeapProfile(b, path+".passivated")
	}
	// What is left is the MemJournal (in production: PostgreSQL), the
	// capacity of maps that had an entry per actor (Go maps do not shrink)
	// and whatever still reaches a stopped actor. Stopping the system while
	// keeping the journal separates the journal from the rest.
	journal := p.journal
	p.stop()
	p = nil
	journalOnly := memMeasure(b)
	if n := len(journal.Events(walletJournalPrefix + "1")); n != 1 {
		b.Fatalf("wallet 1 has %d events, want 1", n)
	}
	runtime.KeepAlive(journal)

	left := diff(passivated.heapInuse, empty.heapInuse)
	journalHeap := diff(journalOnly.heapInuse, base2.heapInuse)
	perPassivated := float64(left) / memPassivating
	perJournal := float64(journalHeap) / memPassivating
	b.Logf("after passivation of %d wallets: heap +%.1f MiB over the empty system (%.0f B per wallet), "+
		"of which MemJournal ≈ %.1f MiB (%.0f B per wallet); actor-system leftovers ≈ %.0f B per wallet",
		memPassivating, mib(left), perPassivated, mib(journalHeap), perJournal, perPassivated-perJournal)
	b.Logf("so a live wallet actor itself costs ≈ %.0f B, a passivated one ≈ %.0f B outside the journal",
		perWallet-perJournal, max(perPassivated-perJournal, 0))
	b.ReportMetric(mib(left), "heap_after_passivation_MiB")
	b.ReportMetric(perPassivated, "bytes_per_passivated_wallet")
	b.ReportMetric(perJournal, "journal_bytes_per_wallet")
	b.ReportMetric(perPassivated-perJournal, "bytes_per_passivated_wallet_outside_journal")
	// The journal's share is the database's in production; what the actor
	// system keeps per passivated wallet must be a small fraction of a live
	// one. (Maps that held an entry per actor — the process registry's
	// shards, the manager's children — keep their capacity: a high-water
	// mark, reused by later activations, of a few hundred bytes a wallet.)
	// (A failed benchmark prints no metrics line: the Logf lines above carry
	// the same figures.)
	if outside, live := perPassivated-perJournal, perWallet-perJournal; outside > live/3 {
		b.Errorf("a passivated wallet keeps %.0f B outside the journal, a live one %.0f B: "+
			"stopped actors are still reachable (see the heap profile with MEMFOOTPRINT_HEAPPROFILE)",
			outside, live)
	}
}
