package actors

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/concert/ticketing/actors/actortest"
	"github.com/concert/ticketing/cluster"
	"github.com/concert/ticketing/messages"
)

// counterModel sums Int64Value events: the smallest journaled model.
type counterModel struct{ sum int64 }

func (m *counterModel) Apply(e proto.Message) {
	if v, ok := e.(*wrapperspb.Int64Value); ok {
		m.sum += v.Value
	}
}
func (m *counterModel) Snapshot() proto.Message { return wrapperspb.Int64(m.sum) }
func (m *counterModel) Restore(s proto.Message) error {
	m.sum = s.(*wrapperspb.Int64Value).Value
	return nil
}

// counterActor adds an Int64Value command to its sum and answers the sum
// once durable; a StringValue "panic" persists 1000 and then panics, as a
// bug on a client's input would; a StringValue with other text is
// persisted as an event that cannot be encoded (it is not UTF-8).
type counterActor struct {
	j       *Journaled
	model   *counterModel
	started *atomic.Int64
}

func (a *counterActor) Receive(ctx actor.Context) {
	defer a.j.Guard(ctx)
	if a.j.Intercept(ctx) {
		return
	}
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.started.Add(1)
	case *wrapperspb.Int64Value:
		if rej := a.j.Persist(wrapperspb.Int64(m.Value)); rej != nil {
			a.j.Reply(ctx, rej)
			return
		}
		a.j.Reply(ctx, wrapperspb.Int64(a.model.sum))
	case *wrapperspb.StringValue:
		if m.Value == "panic" {
			_ = a.j.Persist(wrapperspb.Int64(1000))
			panic("a bug hit by a client's input")
		}
		if rej := a.j.Persist(wrapperspb.String(m.Value)); rej != nil {
			a.j.Reply(ctx, rej)
			return
		}
		a.j.Reply(ctx, wrapperspb.Int64(a.model.sum))
	}
}

type counterHarness struct {
	j       *actortest.MemJournal
	local   *cluster.Local
	started atomic.Int64
	actors  sync.Map // incarnation → *counterActor
}

func newCounterHarness(t *testing.T) *counterHarness {
	h := &counterHarness{j: actortest.NewMemJournal()}
	system := actor.NewActorSystem(actor.WithLoggerFactory(seatQuietLoggerFactory))
	h.local = cluster.NewLocal(system, map[string]cluster.Producer{
		"counter": func(identity string) actor.Actor {
			m := &counterModel{}
			a := &counterActor{model: m, started: &h.started}
			a.j = NewJournaled(JournaledOptions{ID: "counter/" + identity, Journal: h.j, Model: m, Logger: seatQuietLogger()})
			h.actors.Store(a.j.Incarnation(), a)
			return a
		},
	})
	t.Cleanup(func() { h.local.Stop(); system.Shutdown() })
	return h
}

func seatQuietLoggerFactory(*actor.ActorSystem) *slog.Logger { return seatQuietLogger() }

func (h *counterHarness) add(n int64) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := h.local.Request(ctx, "counter", "1", wrapperspb.Int64(n))
	if err != nil {
		return 0, err
	}
	return res.(*wrapperspb.Int64Value).Value, nil
}

func (h *counterHarness) journalSum(t *testing.T) int64 {
	t.Helper()
	var sum int64
	for _, m := range journaledEvents(t, h.j, "counter/1") {
		sum += m.(*wrapperspb.Int64Value).Value
	}
	return sum
}

// TestPanicReplacesTheIncarnation: a panic while writes are in flight takes
// the actor out of service and a fresh incarnation recovers from the journal.
// Every acknowledged add is in the journal, the new incarnation's sum equals
// the journal's, and the old incarnation's late completions change nothing.
func TestPanicReplacesTheIncarnation(t *testing.T) {
	h := newCounterHarness(t)
	h.j.Delay(20 * time.Millisecond) // writes stay in flight across the panic
	if _, err := h.add(1); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var acked atomic.Int64
	start := make(chan struct{})
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if i == 20 {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_, err := h.local.Request(ctx, "counter", "1", wrapperspb.String("panic"))
				if seatCode(err) != messages.CodeStoreUnavailable {
					t.Errorf("panicking command: %v, want STORE_UNAVAILABLE", err)
				}
				return
			}
			if _, err := h.add(1); err == nil {
				acked.Add(1)
			} else if seatCode(err) != messages.CodeStoreUnavailable {
				t.Errorf("add: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	h.j.Delay(0)
	var sum int64
	actortest.Eventually(t, 5*time.Second, func() bool {
		var err error
		sum, err = h.add(0) // 503 while the broken incarnation drains its mailbox
		return err == nil
	}, "the replacement serves")
	if h.started.Load() < 2 {
		t.Fatalf("%d incarnations: the panic did not replace the actor", h.started.Load())
	}
	js := h.journalSum(t)
	if sum != js {
		t.Fatalf("new incarnation's sum %d, journal's %d", sum, js)
	}
	// 1 (first add) + every acknowledged add must be there; the panicking
	// command's 1000 may or may not be (its caller heard 503).
	if base := js % 1000; base < 1+acked.Load() {
		t.Fatalf("journal holds %d adds, %d were acknowledged", base-1, acked.Load())
	}
}

// TestStaleCompletionIgnored: a completion tagged with another incarnation
// (an old incarnation's journal write, timer or debit answer) is dropped.
func TestStaleCompletionIgnored(t *testing.T) {
	h := newCounterHarness(t)
	if _, err := h.add(5); err != nil {
		t.Fatal(err)
	}
	var a *counterActor
	h.actors.Range(func(_, v any) bool { a = v.(*counterActor); return false })
	ran := make(chan struct{}, 2)
	// Forge a completion of another incarnation, then one of this one.
	pid := a.j.self
	a.j.root.Send(pid, &envelope{inc: a.j.Incarnation() + 1, fn: func() { ran <- struct{}{} }})
	a.j.Post()(func() { ran <- struct{}{} })
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("own completion did not run")
	}
	if sum, _ := h.add(0); sum != 5 {
		t.Fatalf("sum %d", sum)
	}
	select {
	case <-ran:
		t.Fatal("another incarnation's completion ran")
	default:
	}
}

// TestUnencodableEventRefused: an event that cannot be encoded (client text
// that is not UTF-8) is refused with INVALID_REQUEST, changes nothing, and
// the actor keeps serving the same incarnation — no panic, no restart.
func TestUnencodableEventRefused(t *testing.T) {
	h := newCounterHarness(t)
	if _, err := h.add(3); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := h.local.Request(ctx, "counter", "1", wrapperspb.String("pay-\xff\xfe"))
	if seatCode(err) != messages.CodeInvalidRequest {
		t.Fatalf("got %v, want INVALID_REQUEST", err)
	}
	if sum, err := h.add(4); err != nil || sum != 7 {
		t.Fatalf("after the refusal: %d %v", sum, err)
	}
	if h.started.Load() != 1 {
		t.Fatalf("%d incarnations, want 1", h.started.Load())
	}
}

// TestSeatBadKeyDoesNotDisturbOthers is the given input at the
// actor level: a payment whose idempotency key is not UTF-8, sent together
// with holds of 8 other users on the same date. The payment is refused at
// once; every hold is acknowledged, journaled, with a distinct reservation
// id; the actor is never replaced.
func TestSeatBadKeyDoesNotDisturbOthers(t *testing.T) {
	for run := range 3 {
		t.Run(fmt.Sprint(run), func(t *testing.T) {
			h := newSeatHarness(t, SeatConfig{SnapshotEvery: 5}).start()
			h.charge(1, 5000)
			r, err := h.hold(1, 1)
			if err != nil {
				t.Fatal(err)
			}
			h.seatJ.Delay(5 * time.Millisecond)
			var wg sync.WaitGroup
			ids := make(chan int64, 64)
			start := make(chan struct{})
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				began := time.Now()
				_, err := h.pay(r.Id, 1, stPrice, "pay-\xff\xfe")
				if seatCode(err) != messages.CodeInvalidRequest {
					t.Errorf("bad key: %v, want INVALID_REQUEST", err)
				}
				if d := time.Since(began); d > 5*time.Second { // the caller's timeout is 10 s
					t.Errorf("bad key answered after %v", d)
				}
			}()
			for u := int64(2); u <= 9; u++ {
				for k := range 3 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						res, err := h.hold(u, int(u-2)*3+k+2)
						if err != nil {
							t.Errorf("hold by user %d: %v", u, err)
							return
						}
						ids <- res.Id
					}()
				}
			}
			close(start)
			wg.Wait()
			close(ids)
			h.seatJ.Delay(0)
			seen := map[int64]bool{}
			for id := range ids {
				if seen[id] {
					t.Fatalf("reservation id %d given twice", id)
				}
				seen[id] = true
			}
			if len(seen) != 24 {
				t.Fatalf("%d holds acknowledged, want 24", len(seen))
			}
			if n := h.started.Load(); n != 1 {
				t.Fatalf("%d incarnations, want 1", n)
			}
			replayed := replaySeat(t, h.seatJ, stOption)
			for id := range seen {
				if replayed.reservations[id] == nil {
					t.Fatalf("acknowledged hold %d is not in the journal", id)
				}
			}
		})
	}
}
