package actors

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/concert/ticketing/actors/actortest"
	"github.com/concert/ticketing/messages"
)

// TestHoldTakesSlotInTheSameRound: the hold's event and its wallet slot are
// written at the same time — both writes are in flight together before
// either is acknowledged — and the caller hears only once both are durable.
func TestHoldTakesSlotInTheSameRound(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{})
	h.walletJ = actortest.NewMemJournal()
	h.start()
	h.seatJ.HoldCompletions()
	h.walletJ.HoldCompletions()
	done := make(chan error, 1)
	go func() { _, err := h.hold(1, 1); done <- err }()
	actortest.Eventually(t, 5*time.Second, func() bool {
		return h.seatJ.HeldCompletions() == 1 && h.walletJ.HeldCompletions() == 1
	}, "the hold and its slot to be written together")

	// Nobody else may act on the hold before its holder hears of it.
	_, err := h.pay(stRid(1), 1, stPrice, "k")
	wantCode(t, err, messages.CodeStoreUnavailable)
	_, err = h.cancel(stRid(1), 1)
	wantCode(t, err, messages.CodeStoreUnavailable)

	h.seatJ.ReleaseCompletions()
	select {
	case err := <-done:
		t.Fatalf("answered (%v) before the slot was durable", err)
	case <-time.After(50 * time.Millisecond):
	}
	h.walletJ.ReleaseCompletions()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := countEvents[*messages.HoldSlotTaken](t, h.walletJ, "wallet/1"); got != 1 {
		t.Fatalf("%d slots taken, want 1", got)
	}
}

// TestHoldRefusedSlotCancelsHold: a user at the cross-date limit wins the
// seat but not the slot: the answer is HOLD_LIMIT, the hold is cancelled
// in the journal, and the seat is free for the next fan.
func TestHoldRefusedSlotCancelsHold(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{})
	h.walletLimit = 2
	h.start()
	exp := time.Now().Add(time.Hour).UnixMilli()
	for i := int64(1); i <= 2; i++ { // slots held on another date
		if _, err := h.request("wallet", 1, &messages.TakeHoldSlot{UserId: 1, ReservationId: ReservationID(99, i), ExpiresAtMs: exp}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := h.hold(1, 1)
	wantCode(t, err, messages.CodeHoldLimit)
	if !h.isFree(1) {
		t.Fatal("the refused hold keeps seat 1")
	}
	if got := h.mustGet(stRid(1)); got.Status != messages.ReservationStatus_RESERVATION_CANCELLED {
		t.Fatalf("the refused hold is %v, want cancelled", got.Status)
	}
	if _, err := h.hold(2, 1); err != nil {
		t.Fatalf("the next fan cannot hold seat 1: %v", err)
	}
}

// TestHoldSlotInDoubtCancelsHold: the wallet cannot answer (its journal is
// down): the hold is cancelled and the caller hears STORE_UNAVAILABLE, so no
// seat stays held by a hold its user never heard of.
func TestHoldSlotInDoubtCancelsHold(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{})
	h.walletJ = actortest.NewMemJournal()
	h.start()
	h.walletJ.SetDown(true)
	_, err := h.hold(1, 1)
	wantCode(t, err, messages.CodeStoreUnavailable)
	if !h.isFree(1) {
		t.Fatal("a hold whose slot is in doubt keeps seat 1")
	}
	h.walletJ.SetDown(false)
	actortest.Eventually(t, 5*time.Second, func() bool { _, err := h.hold(1, 1); return err == nil },
		"a hold once the wallet is back")
}

// TestHoldLimitAcrossConcurrentHolds: one user asks for 50 seats at once
// with a limit of 4 slots: exactly 4 holds are granted, the other 46 are
// refused HOLD_LIMIT and their seats are free again, whatever the order in
// which the seat and wallet writes complete.
func TestHoldLimitAcrossConcurrentHolds(t *testing.T) {
	for round := range 5 {
		h := newSeatHarness(t, SeatConfig{})
		h.walletLimit = 4
		h.walletJ = actortest.NewMemJournal()
		h.walletJ.Delay(time.Duration(round) * time.Millisecond) // the slot later than the hold, or not
		h.start()
		var won, limited atomic.Int64
		var wg sync.WaitGroup
		for seat := 1; seat <= 50; seat++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := h.hold(1, seat)
				switch seatCode(err) {
				case "":
					won.Add(1)
				case messages.CodeHoldLimit:
					limited.Add(1)
				default:
					t.Errorf("hold of seat %d: %v", seat, err)
				}
			}()
		}
		wg.Wait()
		if won.Load() != 4 || limited.Load() != 46 {
			t.Fatalf("round %d: %d granted and %d refused, want 4 and 46", round, won.Load(), limited.Load())
		}
		if free := h.free(stOption); len(free) != 46 {
			t.Fatalf("round %d: %d seats free, want 46", round, len(free))
		}
	}
}

// TestCancelAnsweredOnceSlotReleased: a user at the cross-date limit who
// hears that a cancel succeeded may hold another seat at once: the cancel
// is answered only after the wallet has released the slot, whatever the
// order in which the release and the next hold reach the wallet.
func TestCancelAnsweredOnceSlotReleased(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{})
	h.walletLimit = 1
	h.start()
	r, err := h.hold(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.hold(1, 2)
	wantCode(t, err, messages.CodeHoldLimit)

	gate := make(chan struct{})
	h.releaseGate.Store(&gate)
	done := make(chan error, 1)
	go func() { _, err := h.cancel(r.Id, 1); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("cancel answered (%v) before the wallet released the slot", err)
	case <-time.After(100 * time.Millisecond):
	}
	h.releaseGate.Store(nil)
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := h.hold(1, 2); err != nil {
		t.Fatalf("hold right after the cancel: %v", err)
	}
}

// TestPaymentReleasesSlotWithTheDebit: a paid seat is no longer a hold, so
// a user at the limit who hears "paid" may hold another seat at once — the
// wallet frees the slot in the debit's own write.
func TestPaymentReleasesSlotWithTheDebit(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{})
	h.walletLimit = 1
	h.start()
	h.charge(1, 5000)
	r, err := h.hold(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{}) // no release message gets through
	h.releaseGate.Store(&gate)
	t.Cleanup(func() { close(gate) })
	if _, err := h.pay(r.Id, 1, stPrice, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.hold(1, 2); err != nil {
		t.Fatalf("hold right after the payment: %v", err)
	}
}

// TestHoldExpiredBeforeItsSlotIsNotGranted: with a hold time shorter than
// the wallet's answer, the hold runs out while it waits for its slot; its
// caller hears HOLD_EXPIRED, not a 200 for a hold it never had.
func TestHoldExpiredBeforeItsSlotIsNotGranted(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{HoldTTL: 30 * time.Millisecond})
	h.walletJ = actortest.NewMemJournal()
	h.start()
	h.walletJ.HoldCompletions()
	done := make(chan error, 1)
	go func() { _, err := h.hold(1, 1); done <- err }()
	actortest.Eventually(t, 5*time.Second, func() bool { return h.walletJ.HeldCompletions() == 1 }, "the slot's write to be held")
	actortest.Eventually(t, 5*time.Second, func() bool {
		return countEvents[*messages.HoldExpired](t, h.seatJ, seatActorID) == 1
	}, "the hold to expire while it waits for its slot")
	h.walletJ.ReleaseCompletions()
	wantCode(t, <-done, messages.CodeHoldExpired)
}
