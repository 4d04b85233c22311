package actors

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/actors/actortest"
	"github.com/concert/ticketing/messages"
)

// TestSeatStateBoundedAndArchiveReadable is the given input: 100
// and then 1,000 hold/cancel cycles on one seat grew its snapshot from
// 4.1 KB to 41 KB. Now the snapshot holds live holds and sold seats only;
// the closed reservations went to the archive with the snapshots, and every
// one of them still answers GET, cancel (idempotent) and pay (refused) as
// before.
func TestSeatStateBoundedAndArchiveReadable(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{SnapshotEvery: 20}).start()
	h.charge(1, 5000)
	sizes := map[int]int{}
	var first int64
	for i := 1; i <= 1000; i++ {
		r, err := h.hold(1, 1)
		if err != nil {
			t.Fatal(err)
		}
		if first == 0 {
			first = r.Id
		}
		if _, err := h.cancel(r.Id, 1); err != nil {
			t.Fatal(err)
		}
		if i == 100 || i == 1000 {
			actortest.Eventually(t, 5*time.Second, func() bool {
				s, ok := h.seatJ.Snapshot(seatActorID)
				return ok && s.Seq >= int64(2*i-20)
			}, "a snapshot after %d cycles", i)
			s, _ := h.seatJ.Snapshot(seatActorID)
			sizes[i] = len(s.Payload)
		}
	}
	// At most one hold is live when a snapshot is taken: a few dozen bytes,
	// whatever the history (it was 4.1 KB at 100 cycles and 41 KB at 1,000).
	if sizes[100] > 128 || sizes[1000] > 128 {
		t.Fatalf("snapshot grew from %d to %d bytes over 900 more cycles", sizes[100], sizes[1000])
	}
	if n := len(h.state(stOption).GetReservations()); n != 0 {
		t.Fatalf("%d reservations in the state with none live", n)
	}
	got, err := h.get(first)
	if err != nil || got.Status != messages.ReservationStatus_RESERVATION_CANCELLED || got.UserId != 1 {
		t.Fatalf("archived reservation %d: %v %v", first, got, err)
	}
	again, err := h.cancel(first, 1)
	if err != nil || !proto.Equal(again, got) {
		t.Fatalf("cancel again: %v %v, want it answered as it is", again, err)
	}
	_, err = h.cancel(first, 2)
	wantCode(t, err, messages.CodeTokenUserMismatch)
	_, err = h.pay(first, 1, stPrice, "k")
	wantCode(t, err, messages.CodeReservationCancelled)
	_, err = h.get(stRid(5000))
	wantCode(t, err, messages.CodeReservationNotFound)

	h.start() // a new incarnation recovers from the small snapshot
	if got2 := h.mustGet(first); !proto.Equal(got2, got) {
		t.Fatalf("after restart: %v", got2)
	}
	r, err := h.hold(2, 1)
	if err != nil || r.Id != stRid(1001) {
		t.Fatalf("hold after restart: %v %v, want id %d", r, err, stRid(1001))
	}
}
