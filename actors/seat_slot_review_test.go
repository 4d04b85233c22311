package actors

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/actors/actortest"
	"github.com/concert/ticketing/messages"
)

// seatReservationOf unwraps a seat actor's reservation answer.
func seatReservationOf(t *testing.T, res proto.Message, err error) *messages.Reservation {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	r, ok := res.(*messages.ReservationResult)
	if !ok || r.GetReservation() == nil {
		t.Fatalf("reply %v, want a reservation", res)
	}
	return r.GetReservation()
}

// TestHoldRefusedLimitNotHeldAfterRestart: user 1 (limit 1) holds a seat
// on date 8, then wins seat 2 of stOption but not its slot, while the node's
// write admission is full, so the hold's cancellation cannot be queued. The
// caller hears 409 HOLD_LIMIT, i.e. the hold was refused (or, fixed, 503:
// not settled yet). The node is killed
// before the cancellation is written; after the restart user 1 cancels the
// date-8 hold. A hold answered HOLD_LIMIT must not come back HELD (the recovered seat
// actor asks the wallet for its slot again, and the wallet now has one):
// the client was told it never happened, it does not even know its id, and
// seat 2 would be taken from everyone until the hold's expiry.
func TestHoldRefusedLimitNotHeldAfterRestart(t *testing.T) {
	adm := NewAdmission(1)
	h := newSlotHarness(t, SeatConfig{HoldTTL: time.Hour, Admission: adm})
	h.catalog.add(8, stConcert, 5)
	h.start()
	res, err := h.request("seat", 8, &messages.HoldSeat{UserId: 1, SeatId: 8002})
	other := seatReservationOf(t, res, err)

	refused, _ := refuseSlotUnderOverload(t, h, adm, 1)
	// HOLD_LIMIT claims the hold never happened; STORE_UNAVAILABLE (the
	// outcome is not settled yet) claims nothing.
	answer := seatCode(<-refused)
	if answer != messages.CodeHoldLimit && answer != messages.CodeStoreUnavailable {
		t.Fatalf("the hold of seat 2 answered %q", answer)
	}

	// kill -9: nothing more is written; everything restarts.
	h.seatJ.SetDown(true)
	time.Sleep(50 * time.Millisecond)
	h.start()
	h.seatJ.SetDown(false)
	h.seatJ.ReleaseCompletions()

	if _, err := h.cancel(other.Id, 1); err != nil {
		t.Fatalf("cancel the date-8 hold: %v", err)
	}
	second := stRid(1)
	var r *messages.Reservation
	actortest.Eventually(t, 5*time.Second, func() bool {
		var err error
		r, err = h.get(second)
		if err != nil {
			t.Logf("get: %v", err)
		}
		return err == nil
	}, "the refused hold to be readable")
	if answer == messages.CodeHoldLimit && r.Status == messages.ReservationStatus_RESERVATION_HELD {
		t.Fatalf("the hold answered HOLD_LIMIT is HELD after the restart (seat 2 free: %v)", h.isFree(2))
	}
}
