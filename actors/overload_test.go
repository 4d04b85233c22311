package actors

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/concert/ticketing/actors/actortest"
	"github.com/concert/ticketing/cluster"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// admittedCounters is a counter kind whose actors share one Admission.
func admittedCounters(t *testing.T, j Journal, adm *Admission, started *atomic.Int64) *cluster.Local {
	t.Helper()
	system := actor.NewActorSystem(actor.WithLoggerFactory(seatQuietLoggerFactory))
	local := cluster.NewLocal(system, map[string]cluster.Producer{
		"counter": func(identity string) actor.Actor {
			m := &counterModel{}
			a := &counterActor{model: m, started: started}
			a.j = NewJournaled(JournaledOptions{ID: "counter/" + identity, Journal: j, Model: m, Admission: adm, Logger: seatQuietLogger()})
			return a
		},
	})
	t.Cleanup(func() { local.Stop(); system.Shutdown() })
	return local
}

func addTo(local *cluster.Local, identity string, n int64) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := local.Request(ctx, "counter", identity, wrapperspb.Int64(n))
	if err != nil {
		return 0, err
	}
	return res.(*wrapperspb.Int64Value).Value, nil
}

// TestOverloadRefusesWithoutBreaking: when no journal write can be
// admitted, a command is refused with STORE_UNAVAILABLE at once, changes
// nothing, and the actor keeps serving as the same incarnation; commands
// of the actor already writing still queue behind its write.
func TestOverloadRefusesWithoutBreaking(t *testing.T) {
	j := actortest.NewMemJournal()
	var started atomic.Int64
	adm := NewAdmission(1)
	local := admittedCounters(t, j, adm, &started)
	// Warm both actors up (recovered, idle). A permit is given back just
	// after the last reply is sent: wait for each, or the next write could
	// find the journal full.
	for _, id := range []string{"a", "b"} {
		if _, err := addTo(local, id, 0); err != nil {
			t.Fatal(err)
		}
		actortest.Eventually(t, 5*time.Second, func() bool { return adm.InUse() == 0 }, "the warm-up's permit released")
	}
	// a's write holds the only slot until its completion is released (not
	// for a fixed time, which a busy machine could outlast).
	j.HoldCompletions()
	var wg sync.WaitGroup
	wg.Add(2)
	var aErr, a2Err error
	go func() { defer wg.Done(); _, aErr = addTo(local, "a", 1) }()
	actortest.Eventually(t, 5*time.Second, func() bool { return adm.InUse() == 1 && j.HeldCompletions() == 1 }, "a's write in flight")
	go func() { defer wg.Done(); _, a2Err = addTo(local, "a", 1) }() // queues behind a's write
	// Had b waited for the journal, it would have timed out instead.
	_, err := addTo(local, "b", 5)
	if seatCode(err) != messages.CodeStoreUnavailable {
		t.Fatalf("b while the journal is full: %v, want STORE_UNAVAILABLE", err)
	}
	j.ReleaseCompletions()
	wg.Wait()
	if aErr != nil || a2Err != nil {
		t.Fatalf("a: %v %v", aErr, a2Err)
	}
	// a's permit is given back just after its last reply is sent.
	actortest.Eventually(t, 5*time.Second, func() bool { return adm.InUse() == 0 }, "a's slot released")
	if sum, err := addTo(local, "b", 1); err != nil || sum != 1 {
		t.Fatalf("b afterwards: sum %d, %v (the refused 5 must not count)", sum, err)
	}
	actortest.Eventually(t, 5*time.Second, func() bool { return adm.InUse() == 0 }, "b's slot released")
	if sum, err := addTo(local, "a", 0); err != nil || sum != 2 {
		t.Fatalf("a: sum %d, %v; want 2", sum, err)
	}
	if n := started.Load(); n != 2 {
		t.Fatalf("%d incarnations for 2 actors: an overload replaced an actor", n)
	}
}

// TestJournalRefusalRetried: a write the journal refuses at once
// (ErrOverloaded: nothing written) is kept and handed over again; the
// caller gets its answer once it is durable, and the actor is not replaced.
func TestJournalRefusalRetried(t *testing.T) {
	j := &refusingJournal{MemJournal: actortest.NewMemJournal()}
	var started atomic.Int64
	local := admittedCounters(t, j, nil, &started)
	if _, err := addTo(local, "a", 1); err != nil {
		t.Fatal(err)
	}
	j.refuse.Store(3)
	sum, err := addTo(local, "a", 2)
	if err != nil || sum != 3 {
		t.Fatalf("after 3 refusals: %d %v", sum, err)
	}
	if j.refuse.Load() > 0 {
		t.Fatal("the journal's refusals were not met")
	}
	if got := len(j.Events("counter/a")); got != 2 {
		t.Fatalf("%d events, want 2", got)
	}
	if started.Load() != 1 {
		t.Fatal("the actor was replaced")
	}
}

// refusingJournal refuses the next n appends synchronously.
type refusingJournal struct {
	*actortest.MemJournal
	refuse atomic.Int64
}

func (r *refusingJournal) AppendAsync(id string, ev []persistence.Event, rem persistence.ReminderChange, done func(error)) error {
	if r.refuse.Add(-1) >= 0 {
		return fmt.Errorf("append %s: %w", id, persistence.ErrOverloaded)
	}
	r.refuse.Store(0)
	return r.MemJournal.AppendAsync(id, ev, rem, done)
}

// TestRecoveryFailureBacksOff: while the journal cannot be read, an actor
// that fails to recover is not activated again on every message: the
// manager answers STORE_UNAVAILABLE during a jittered backoff, and the actor
// recovers by itself on the first message after the store is back.
func TestRecoveryFailureBacksOff(t *testing.T) {
	j := &loadCountingJournal{MemJournal: actortest.NewMemJournal()}
	var started atomic.Int64
	local := admittedCounters(t, j, nil, &started)
	if _, err := addTo(local, "a", 4); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	j.SetDown(true)
	// Passivate it the hard way: a failed write breaks it, the next message
	// activates a new incarnation that cannot recover.
	_, _ = addTo(local, "a", 1)
	for range 50 {
		_, err := addTo(local, "a", 1)
		if seatCode(err) != messages.CodeStoreUnavailable {
			t.Fatalf("during the outage: %v", err)
		}
	}
	// The first load recovered; a failed one may follow at most once per
	// cool-down. Six loads is what the backoff allows in 1.55 s, more than
	// 51 messages take; a slower machine may see a cool-down or two more
	// end meanwhile, never one attempt per message.
	n := j.loads.Load()
	if allowed := 1 + maxRecoveries(time.Since(began)); n > max(6, allowed) {
		t.Fatalf("%d recovery attempts for 51 messages in %v (the backoff allows %d): recovery does not back off",
			n, time.Since(began).Round(time.Millisecond), allowed)
	}
	j.SetDown(false)
	actortest.Eventually(t, 10*time.Second, func() bool {
		sum, err := addTo(local, "a", 0)
		return err == nil && sum == 4
	}, "recovers after the outage with only the acknowledged add")
}

// maxRecoveries is the most recovery attempts the manager's backoff
// (cluster.Local: 100 ms doubling to 5 s, at least half of each waited)
// lets one identity make within elapsed: the first at once, the next one
// each time a cool-down has passed.
func maxRecoveries(elapsed time.Duration) int64 {
	n, waited, d := int64(1), time.Duration(0), 100*time.Millisecond
	for {
		waited += d / 2
		if waited > elapsed {
			return n
		}
		n++
		d = min(2*d, 5*time.Second)
	}
}

// loadCountingJournal counts recoveries (each attempt reads the journal once).
type loadCountingJournal struct {
	*actortest.MemJournal
	loads atomic.Int64
}

func (l *loadCountingJournal) Recover(ctx context.Context, id string, restore func(persistence.Snapshot) error, apply func(persistence.Event) error) error {
	l.loads.Add(1)
	return l.MemJournal.Recover(ctx, id, restore, apply)
}

// warnCounter counts the log records with one message.
type warnCounter struct {
	msg string
	n   *atomic.Int64
}

func (h warnCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h warnCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (h warnCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h warnCounter) WithGroup(string) slog.Handler      { return h }

// TestSeatLeavesRefusedExpiriesToItsTimer: while the node's write admission
// is full, a seat actor's commands do not collect, encode and have refused
// its due holds' expiries one more time each (O(due holds) and a warning
// per message); a hold is refused for load rather than decided on holds
// that ran out; the expiry timer writes them once the admission frees up.
func TestSeatLeavesRefusedExpiriesToItsTimer(t *testing.T) {
	var warns atomic.Int64
	adm := NewAdmission(1)
	const ttl = 300 * time.Millisecond
	h := newSeatHarness(t, SeatConfig{HoldTTL: ttl, Admission: adm,
		Logger: slog.New(warnCounter{msg: "hold expiries not stored yet", n: &warns})})
	h.start()
	const holds = 50
	for i := 1; i <= holds; i++ {
		if _, err := h.hold(int64(i), i); err != nil {
			t.Fatalf("hold %d: %v", i, err)
		}
	}
	// Other actors fill the node's write admission, and the holds come due.
	require.Eventually(t, adm.tryAcquire, 5*time.Second, time.Millisecond)
	full := time.Now() // refusals can only start here
	time.Sleep(ttl)
	const reads = 200
	for range reads {
		if _, err := h.request("seat", stOption, &messages.GetAvailability{}); err != nil {
			t.Fatalf("availability: %v", err)
		}
	}
	// Only the expiry timer's own tries are refused (one every
	// seatRetryMin), not one per read.
	timerTries := int64(time.Since(full)/seatRetryMin) + 2
	require.LessOrEqual(t, warns.Load(), timerTries, "due expiries were collected and refused at reads")
	// A hold of a seat whose hold ran out is refused for load, not told the
	// seat is taken (nor its user the limit reached) by a hold that is over.
	_, err := h.hold(holds+1, 1)
	require.Equal(t, messages.CodeStoreUnavailable, seatCode(err), "a hold decided on an expired hold: %v", err)

	adm.release()
	expired := func() int {
		n := 0
		for _, e := range journaledEvents(t, h.seatJ, seatJournalPrefix+strconv.FormatInt(stOption, 10)) {
			if _, ok := e.(*messages.HoldExpired); ok {
				n++
			}
		}
		return n
	}
	require.Eventually(t, func() bool { return expired() == holds }, 10*time.Second, 10*time.Millisecond,
		"the expiry timer did not write the expiries once the admission freed up")
}
