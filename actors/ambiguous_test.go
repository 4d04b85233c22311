package actors

import (
	"fmt"
	"testing"
	"time"

	"github.com/concert/ticketing/actors/actortest"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// TestWrittenButReportedFailed: the journal writes a hold but reports the
// commit as failed (a lost commit reply). The caller hears 503 — the outcome
// is unknown to it — and the next incarnation recovers the hold as written:
// the seat stays taken and its reservation id is never given to anyone else.
func TestWrittenButReportedFailed(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{}).start()
	if _, err := h.hold(1, 1); err != nil {
		t.Fatal(err)
	}
	h.seatJ.WriteButFail(fmt.Errorf("commit reply lost: %w", persistence.ErrUnavailable))
	_, err := h.hold(2, 2)
	wantCode(t, err, messages.CodeStoreUnavailable)

	r3, err := h.hold(3, 3)
	if err != nil {
		t.Fatal(err)
	}
	if h.isFree(2) {
		t.Fatal("the written hold of seat 2 was lost")
	}
	_, err = h.hold(4, 2)
	wantCode(t, err, messages.CodeSeatUnavailable)
	if r3.Id != stRid(3) {
		t.Fatalf("third hold got id %d, want %d: the written hold's id was reused", r3.Id, stRid(3))
	}
	if got := h.mustGet(stRid(2)); got.UserId != 2 || got.Status != messages.ReservationStatus_RESERVATION_HELD {
		t.Fatalf("written hold: %v", got)
	}
}

// TestLateCompletionAfterRestart: completions of an old incarnation's
// writes arrive after a new incarnation took over (the node's actors were
// all replaced meanwhile). They release nothing in the new incarnation:
// its answers rest only on what it wrote or recovered.
func TestLateCompletionAfterRestart(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{}).start()
	if _, err := h.hold(1, 1); err != nil {
		t.Fatal(err)
	}
	h.seatJ.HoldCompletions()
	done := make(chan error, 1)
	go func() { _, err := h.hold(2, 2); done <- err }() // written, not yet acknowledged
	// The hold's write and its wallet slot's, made at the same time.
	actortest.Eventually(t, 5*time.Second, func() bool { return h.seatJ.HeldCompletions() == 2 }, "the writes are held")
	h.start() // a new incarnation on the same journal
	// The new incarnation's own writes wait too: release all, old first.
	go func() { _, _ = h.hold(3, 3) }()
	actortest.Eventually(t, 5*time.Second, func() bool { return h.seatJ.HeldCompletions() >= 3 }, "the new write is held")
	h.seatJ.ReleaseCompletions()
	select {
	case err := <-done:
		// Its actor stopped before the write was confirmed: the outcome is
		// unknown to it, and it says so instead of letting the caller wait.
		wantCode(t, err, messages.CodeStoreUnavailable)
	case <-time.After(5 * time.Second):
		t.Fatal("the old incarnation's caller was left waiting")
	}
	replayed := replaySeat(t, h.seatJ, stOption)
	for _, id := range []int64{stRid(1), stRid(2), stRid(3)} {
		if replayed.reservations[id] == nil {
			t.Fatalf("reservation %d is not in the journal", id)
		}
	}
	if got := h.mustGet(stRid(3)); got.UserId != 3 {
		t.Fatalf("reservation 3 belongs to %d", got.UserId)
	}
}
