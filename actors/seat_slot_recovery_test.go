package actors

import (
	"errors"
	"testing"
	"time"

	"github.com/concert/ticketing/actors/actortest"
	"github.com/concert/ticketing/messages"
)

// userHeld counts the HELD reservations of user among ids, reading each
// one through the seat actor; a read refused STORE_UNAVAILABLE (a hold
// being confirmed) counts as not observed.
func userHeld(h *seatHarness, user int64, ids ...int64) int {
	h.t.Helper()
	n := 0
	for _, id := range ids {
		r, err := h.get(id)
		if seatCode(err) == messages.CodeStoreUnavailable {
			continue
		}
		if err != nil {
			h.t.Fatalf("get %d: %v", id, err)
		}
		if r.UserId == user && r.Status == messages.ReservationStatus_RESERVATION_HELD {
			n++
		}
	}
	return n
}

// TestRefusedSlotHoldDoesNotSurviveAFailedCancel: a user at the limit (1)
// wins a second seat but not its slot; the hold's event is durable, but the
// write of its cancellation fails (the store went down between the two
// writes). The caller hears 503, and the recovered seat actor must not keep
// a hold that has no slot: the user would hold 2 seats with a limit of 1
// until the hold's expiry, and the seat stays taken by a hold the wallet
// refused.
func TestRefusedSlotHoldDoesNotSurviveAFailedCancel(t *testing.T) {
	h := newSlotHarness(t, SeatConfig{HoldTTL: time.Hour})
	h.start()
	first, err := h.hold(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	h.seatJ.HoldCompletions()
	done := make(chan error, 1)
	go func() { _, err := h.hold(1, 2); done <- err }()
	actortest.Eventually(t, 5*time.Second, func() bool { return h.seatJ.HeldCompletions() == 1 },
		"the second hold's event to be written")
	h.seatJ.FailNext(errors.New("store went down")) // the HoldCancelled write
	h.seatJ.ReleaseCompletions()
	err = <-done
	if c := seatCode(err); c != messages.CodeStoreUnavailable && c != messages.CodeHoldLimit {
		t.Fatalf("second hold: %v", err)
	}
	second := stRid(2)
	actortest.Eventually(t, 5*time.Second, func() bool {
		r, err := h.get(second)
		return err == nil && r.Status != messages.ReservationStatus_RESERVATION_HELD
	}, "the hold whose slot was refused to end")
	if n := userHeld(h, 1, first.Id, second); n > 1 {
		t.Fatalf("user 1 holds %d seats, limit 1", n)
	}
	if !h.isFree(2) {
		t.Fatal("seat 2 stays held by a hold whose slot was refused")
	}
}

// TestHoldWithoutSlotDoesNotSurviveARestart: the node dies (kill -9) after a
// hold's event is durable but before its slot is known: the wallet could
// not take it (its store failed) and the cancellation never got written.
// The recovered seat actor must not keep the hold beside the user's other
// holds beyond the limit.
func TestHoldWithoutSlotDoesNotSurviveARestart(t *testing.T) {
	h := newSlotHarness(t, SeatConfig{HoldTTL: time.Hour})
	h.start()
	first, err := h.hold(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	h.seatJ.HoldCompletions()
	t.Cleanup(h.seatJ.ReleaseCompletions)
	go func() { _, _ = h.hold(1, 2) }()
	actortest.Eventually(t, 5*time.Second, func() bool { return h.seatJ.HeldCompletions() == 1 },
		"the second hold's event to be written")
	// The kill: the seat's later writes never happen, everything restarts
	// on the same journals.
	h.seatJ.SetDown(true)
	time.Sleep(50 * time.Millisecond) // let the wallet answer, as it may
	h.start()
	h.seatJ.SetDown(false)
	h.seatJ.ReleaseCompletions()

	second := stRid(2)
	actortest.Eventually(t, 5*time.Second, func() bool {
		return userHeld(h, 1, first.Id, second) <= 1 && h.isFree(2)
	}, "the recovered hold without a slot to end")
	if r := h.mustGet(first.Id); r.Status != messages.ReservationStatus_RESERVATION_HELD {
		t.Fatalf("the acknowledged hold is %v after the restart, want HELD", r.Status)
	}
}

// TestHoldRefusedForTheLimitNeverTurnsAwayAnotherFan: user 1, at the
// cross-date limit, asks for seat 2 and is refused HOLD_LIMIT: its hold
// never happened. Another fan asking for seat 2 while the wallet weighs
// user 1's slot must not be refused SEAT_UNAVAILABLE on account of it —
// nobody ever held seat 2 — and a read of the free seats meanwhile must
// not show seat 2 taken. (Linearizably, a refused hold changes nothing.)
func TestHoldRefusedForTheLimitNeverTurnsAwayAnotherFan(t *testing.T) {
	h := newSlotHarness(t, SeatConfig{HoldTTL: time.Hour})
	h.start()
	if _, err := h.hold(1, 1); err != nil {
		t.Fatal(err)
	}
	open := h.busyWallet(1)

	first := make(chan error, 1)
	go func() { _, err := h.hold(1, 2); first <- err }()
	actortest.Eventually(t, 5*time.Second, func() bool {
		return countEvents[*messages.SeatHeld](t, h.seatJ, seatActorID) == 2
	}, "user 1's second hold to be written")

	if !h.isFree(2) {
		t.Error("seat 2 reads taken while its only hold waits for a slot it will be refused")
	}
	second := make(chan error, 1)
	handled := h.holdsIn.Load()
	go func() { _, err := h.hold(2, 2); second <- err }()
	actortest.Eventually(t, 5*time.Second, func() bool { return h.holdsIn.Load() > handled },
		"the other fan's hold to reach the seat actor")
	open()
	wantCode(t, <-first, messages.CodeHoldLimit)
	if err := <-second; err != nil {
		t.Fatalf("another fan's hold of seat 2: %v; but no hold of seat 2 was ever granted", err)
	}
}

// TestRefusedSlotHoldCancelledDespiteOverload: the node is at its write
// admission limit when the wallet refuses a hold's slot, so the hold's
// cancellation cannot be queued at once. The caller hears STORE_UNAVAILABLE
// (not yet HOLD_LIMIT: the hold is not undone); the hold must still end soon — not stay HELD until its expiry, keeping the
// seat from everyone and its user above the limit.
func TestRefusedSlotHoldCancelledDespiteOverload(t *testing.T) {
	adm := NewAdmission(1)
	h := newSlotHarness(t, SeatConfig{HoldTTL: time.Hour, Admission: adm})
	h.catalog.add(8, stConcert, 5)
	h.start()
	first, err := h.hold(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	refused, other := refuseSlotUnderOverload(t, h, adm, 2)
	// Not HOLD_LIMIT while the cancellation is not even queued: a crash
	// before it is written could let the hold stand after all
	// (TestHoldRefusedLimitNotHeldAfterRestart).
	wantCode(t, <-refused, messages.CodeStoreUnavailable)
	h.seatJ.ReleaseCompletions()
	if err := <-other; err != nil {
		t.Fatal(err)
	}
	second := stRid(2)
	actortest.Eventually(t, 5*time.Second, func() bool {
		r, err := h.get(second)
		return err == nil && r.Status != messages.ReservationStatus_RESERVATION_HELD && h.isFree(2)
	}, "the hold refused HOLD_LIMIT to end and free seat 2")
	if n := userHeld(h, 1, first.Id, second); n > 1 {
		t.Fatalf("user 1 holds %d seats, limit 1", n)
	}
}

// busyWallet keeps user's wallet busy with a debit that waits at the gate,
// so the slot requests of later holds queue behind it; open lets it finish.
func (h *seatHarness) busyWallet(user int64) (open func()) {
	h.t.Helper()
	open = h.closeGate()
	go func() {
		_, _ = h.request("wallet", user, &messages.DebitPayment{UserId: user, ReservationId: ReservationID(99, 1), Amount: 1})
	}()
	actortest.Eventually(h.t, 5*time.Second, func() bool { return h.gated.Load() == 1 }, "the debit to wait at the gate")
	return open
}

// refuseSlotUnderOverload makes the wallet refuse user 1's hold of seat 2
// while the node's only admission permit is taken, so the hold's
// cancellation cannot be queued at once. The wallet (limit 1) is kept busy
// while the hold is written — held is the SeatHeld count once it is — and
// its permit released; then a write on date 8 takes the permit (its
// completion held: release it with h.seatJ.ReleaseCompletions) and the
// wallet answers. It returns the hold's answer and the date-8 write's.
func refuseSlotUnderOverload(t *testing.T, h *seatHarness, adm *Admission, held int) (refused, other <-chan error) {
	t.Helper()
	open := h.busyWallet(1)
	hold := make(chan error, 1)
	go func() { _, err := h.hold(1, 2); hold <- err }()
	actortest.Eventually(t, 5*time.Second, func() bool {
		return countEvents[*messages.SeatHeld](t, h.seatJ, seatActorID) == held
	}, "user 1's hold of seat 2 to be written")
	// Its completion frees the admission permit (just after its last reply).
	actortest.Eventually(t, 5*time.Second, func() bool { return adm.InUse() == 0 }, "the hold's permit released")

	h.seatJ.HoldCompletions()
	write := make(chan error, 1)
	go func() { _, err := h.request("seat", 8, &messages.HoldSeat{UserId: 2, SeatId: 8001}); write <- err }()
	actortest.Eventually(t, 5*time.Second, func() bool { return h.seatJ.HeldCompletions() == 1 }, "the date-8 write to take the permit")
	open()
	return hold, write
}
