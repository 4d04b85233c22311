package actors

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/concert/ticketing/actors/actortest"
	"github.com/concert/ticketing/messages"
)

// TestSagaResumesWithoutTraffic: the node "crashes" at two points of a
// payment — after PaymentStarted is durable but before the debit, and after
// the wallet's debit is durable but before the seat confirmed — and a new
// node gets no request at all: the reminder service alone wakes the seat
// actor, which settles the payment exactly once.
func TestSagaResumesWithoutTraffic(t *testing.T) {
	for _, tc := range []struct {
		name        string
		debitedOnce bool // the crash comes after the wallet's debit
	}{{"before the debit", false}, {"after the debit", true}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newSeatHarness(t, SeatConfig{}).start()
			h.charge(1, 5000)
			r, err := h.hold(1, 1)
			if err != nil {
				t.Fatal(err)
			}
			if rem, ok := h.seatJ.Reminder(seatActorID); !ok || rem.UnixMilli() != r.ExpiresAtMs {
				t.Fatalf("reminder %v %v, want the hold's deadline", rem, ok)
			}
			var open func()
			if tc.debitedOnce {
				open = h.closeGate()
			} else {
				h.seatJ.HoldCompletions()
			}
			go func() { _, _ = h.pay(r.Id, 1, stPrice, "k") }() // its caller never hears back
			if tc.debitedOnce {
				actortest.Eventually(t, 5*time.Second, func() bool { return h.gated.Load() == 1 }, "the debit reached the wallet")
				h.seatJ.HoldCompletions() // the wallet's write lands, its answer does not
				open()
				actortest.Eventually(t, 5*time.Second, func() bool {
					return countEvents[*messages.PaymentDebited](t, h.seatJ, "wallet/1") == 1
				}, "the debit is in the journal")
			} else {
				actortest.Eventually(t, 5*time.Second, func() bool {
					return countEvents[*messages.PaymentStarted](t, h.seatJ, seatActorID) == 1
				}, "PaymentStarted is in the journal")
			}
			h.start() // the crash: every actor gone, a new node on the same journal
			h.seatJ.ReleaseCompletions()

			svc := &ReminderService{Source: h.seatJ, Router: h.local, Logger: seatQuietLogger()}
			began := time.Now()
			actortest.Eventually(t, 10*time.Second, func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if _, err := svc.Scan(ctx, time.Now().Add(time.Hour)); err != nil {
					t.Fatal(err)
				}
				return countEvents[*messages.ReservationConfirmed](t, h.seatJ, seatActorID) == 1
			}, "the payment settled with no request")
			t.Logf("settled %v after the restart", time.Since(began).Round(time.Millisecond))
			if n := countEvents[*messages.PaymentDebited](t, h.seatJ, "wallet/1"); n != 1 {
				t.Fatalf("%d debits, want exactly 1", n)
			}
			if b := h.balance(1); b != 5000-stPrice {
				t.Fatalf("balance %d, want %d", b, 5000-stPrice)
			}
			if _, ok := h.seatJ.Reminder(seatActorID); ok {
				actortest.Eventually(t, 5*time.Second, func() bool {
					_, ok := h.seatJ.Reminder(seatActorID)
					return !ok
				}, "the reminder is cleared once no work is open")
			}
		})
	}
}

// TestHoldExpiresWithoutTraffic: a hold's deadline passes while no actor
// runs; the reminder service alone brings the seat actor back, which
// journals HoldExpired and clears its reminder.
func TestHoldExpiresWithoutTraffic(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(1_700_000_000_000)}
	h := newSeatHarness(t, SeatConfig{HoldTTL: time.Minute, Now: clock.Now}).start()
	r, err := h.hold(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	h.start() // crash
	clock.advance(2 * time.Minute)
	svc := &ReminderService{Source: h.seatJ, Router: h.local, Logger: seatQuietLogger()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n, err := svc.Scan(ctx, clock.Now()); err != nil || n != 1 {
		t.Fatalf("scan: %d reminders, %v", n, err)
	}
	actortest.Eventually(t, 10*time.Second, func() bool {
		return countEvents[*messages.HoldExpired](t, h.seatJ, seatActorID) == 1
	}, "hold %d expired with no request", r.Id)
	actortest.Eventually(t, 5*time.Second, func() bool {
		_, ok := h.seatJ.Reminder(seatActorID)
		return !ok
	}, "reminder cleared")
}

// fakeClock is a settable clock for actors' Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
