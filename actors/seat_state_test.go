package actors

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// Pure tests of the seat actor's state and decisions: given events, when a
// command at a time, then events or a rejection.

const (
	stOption  = int64(7)
	stConcert = int64(3)
	stPrice   = int64(1000)
)

func stNow() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

func stMs(d time.Duration) int64 { return stNow().Add(d).UnixMilli() }

func stSeatID(no int) int64 { return stOption*1000 + int64(no) }

func stCatalog(seats int) *seatCatalog {
	var list []persistence.Seat
	for no := seats; no >= 1; no-- { // out of order on purpose
		list = append(list, persistence.Seat{ID: stSeatID(no), OptionID: stOption, ConcertID: stConcert, SeatNo: no, Price: stPrice})
	}
	return newSeatCatalog(persistence.ConcertOption{ID: stOption, ConcertID: stConcert, Seats: seats}, list)
}

func stGiven(events ...proto.Message) *seatState {
	s := newSeatState(stOption)
	for _, e := range events {
		s.Apply(e)
	}
	return s
}

// stHeld is the n-th reservation: user holds seat no, from now, for ttl.
func stHeld(n int64, user int64, no int, ttl time.Duration) *messages.SeatHeld {
	return &messages.SeatHeld{ReservationId: ReservationID(stOption, n), SeatId: stSeatID(no), UserId: user,
		Price: stPrice, HeldAtMs: stMs(0), ExpiresAtMs: stMs(ttl)}
}

func stRid(n int64) int64 { return ReservationID(stOption, n) }

func stCode(rej *messages.Rejection) string { return rej.GetCode() }

func TestReservationIDRoundTrip(t *testing.T) {
	for _, opt := range []int64{1, 7, 1 << 20, 1<<31 - 1} {
		for _, n := range []int64{1, 2, 1<<32 - 1} {
			id := ReservationID(opt, n)
			if OptionOfReservation(id) != opt || reservationNo(id) != n || id <= 0 {
				t.Fatalf("ReservationID(%d, %d) = %d → option %d, n %d", opt, n, id, OptionOfReservation(id), reservationNo(id))
			}
		}
	}
}

func TestSeatDecideHold(t *testing.T) {
	cat := stCatalog(50)
	tests := []struct {
		name    string
		given   []proto.Message
		cmd     *messages.HoldSeat
		limit   int
		unknown bool
		want    *messages.SeatHeld
		wantRej string
	}{
		{name: "free seat", cmd: &messages.HoldSeat{UserId: 1, SeatId: stSeatID(3)},
			want: stHeld(1, 1, 3, time.Minute)},
		{name: "counter continues", given: []proto.Message{stHeld(1, 1, 1, time.Minute), stHeld(2, 2, 2, time.Minute)},
			cmd: &messages.HoldSeat{UserId: 1, SeatId: stSeatID(3)}, want: stHeld(3, 1, 3, time.Minute)},
		{name: "no user", cmd: &messages.HoldSeat{UserId: 0, SeatId: stSeatID(3)}, wantRej: messages.CodeInvalidRequest},
		{name: "seat of another date", cmd: &messages.HoldSeat{UserId: 1, SeatId: 8001}, wantRej: messages.CodeSeatNotFound},
		{name: "unknown option", unknown: true, cmd: &messages.HoldSeat{UserId: 1, SeatId: stSeatID(1)}, wantRej: messages.CodeSeatNotFound},
		{name: "held by someone", given: []proto.Message{stHeld(1, 2, 3, time.Minute)},
			cmd: &messages.HoldSeat{UserId: 1, SeatId: stSeatID(3)}, wantRej: messages.CodeSeatUnavailable},
		{name: "held by the same user", given: []proto.Message{stHeld(1, 1, 3, time.Minute)},
			cmd: &messages.HoldSeat{UserId: 1, SeatId: stSeatID(3)}, wantRej: messages.CodeSeatUnavailable},
		{name: "sold", given: []proto.Message{stHeld(1, 2, 3, time.Minute),
			&messages.PaymentStarted{ReservationId: stRid(1), Amount: stPrice},
			&messages.ReservationConfirmed{ReservationId: stRid(1), PaidAtMs: stMs(0)}},
			cmd: &messages.HoldSeat{UserId: 1, SeatId: stSeatID(3)}, wantRej: messages.CodeSeatUnavailable},
		{name: "cancelled seat is free", given: []proto.Message{stHeld(1, 2, 3, time.Minute),
			&messages.HoldCancelled{ReservationId: stRid(1)}},
			cmd: &messages.HoldSeat{UserId: 1, SeatId: stSeatID(3)}, want: stHeld(2, 1, 3, time.Minute)},
		{name: "expired seat is free", given: []proto.Message{stHeld(1, 2, 3, time.Minute),
			&messages.HoldExpired{ReservationId: stRid(1)}},
			cmd: &messages.HoldSeat{UserId: 1, SeatId: stSeatID(3)}, want: stHeld(2, 1, 3, time.Minute)},
		{name: "hold limit", limit: 2, given: []proto.Message{stHeld(1, 1, 1, time.Minute), stHeld(2, 1, 2, time.Minute)},
			cmd: &messages.HoldSeat{UserId: 1, SeatId: stSeatID(3)}, wantRej: messages.CodeHoldLimit},
		{name: "hold limit counts only live holds", limit: 2, given: []proto.Message{stHeld(1, 1, 1, time.Minute),
			stHeld(2, 1, 2, time.Minute), &messages.HoldCancelled{ReservationId: stRid(1)}},
			cmd: &messages.HoldSeat{UserId: 1, SeatId: stSeatID(3)}, want: stHeld(3, 1, 3, time.Minute)},
		{name: "hold limit is per user", limit: 2, given: []proto.Message{stHeld(1, 1, 1, time.Minute), stHeld(2, 1, 2, time.Minute)},
			cmd: &messages.HoldSeat{UserId: 2, SeatId: stSeatID(3)}, want: stHeld(3, 2, 3, time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cat
			if tt.unknown {
				c = &seatCatalog{}
			}
			got, rej := decideHold(stGiven(tt.given...), c, tt.cmd, stNow(), time.Minute, tt.limit)
			if stCode(rej) != tt.wantRej {
				t.Fatalf("rejection %v, want %q", rej, tt.wantRej)
			}
			if tt.want != nil && !proto.Equal(got, tt.want) {
				t.Fatalf("event %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSeatDueExpiries(t *testing.T) {
	s := stGiven(
		stHeld(1, 1, 1, time.Second),   // due
		stHeld(2, 1, 2, 2*time.Second), // due exactly at now+2s
		stHeld(3, 2, 3, time.Hour),     // not due
		stHeld(4, 2, 4, time.Second),   // due but paying
		&messages.PaymentStarted{ReservationId: stRid(4)},
		stHeld(5, 3, 5, time.Second), // cancelled
		&messages.HoldCancelled{ReservationId: stRid(5)},
	)
	at := stNow().Add(2 * time.Second)
	got := dueExpiries(s, at)
	want := []proto.Message{
		&messages.HoldExpired{ReservationId: stRid(1), AtMs: at.UnixMilli()},
		&messages.HoldExpired{ReservationId: stRid(2), AtMs: at.UnixMilli()},
	}
	stEqualEvents(t, got, want)
	if got := dueExpiries(s, stNow()); len(got) != 0 {
		t.Fatalf("nothing is due yet, got %v", got)
	}
}

func stEqualEvents(t *testing.T, got, want []proto.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("event %d: %v, want %v", i, got[i], want[i])
		}
	}
}

func TestSeatDecideCancel(t *testing.T) {
	held := stHeld(1, 1, 1, time.Minute)
	tests := []struct {
		name    string
		given   []proto.Message
		cmd     *messages.CancelReservation
		want    proto.Message
		wantRej string
	}{
		{name: "held", given: []proto.Message{held}, cmd: &messages.CancelReservation{ReservationId: stRid(1), UserId: 1},
			want: &messages.HoldCancelled{ReservationId: stRid(1), AtMs: stMs(0)}},
		{name: "not found", given: []proto.Message{held}, cmd: &messages.CancelReservation{ReservationId: stRid(2), UserId: 1},
			wantRej: messages.CodeReservationNotFound},
		{name: "other user", given: []proto.Message{held}, cmd: &messages.CancelReservation{ReservationId: stRid(1), UserId: 2},
			wantRej: messages.CodeTokenUserMismatch},
		{name: "paying", given: []proto.Message{held, &messages.PaymentStarted{ReservationId: stRid(1)}},
			cmd: &messages.CancelReservation{ReservationId: stRid(1), UserId: 1}, wantRej: messages.CodePaymentInProgress},
		{name: "held again after an abort", given: []proto.Message{held, &messages.PaymentStarted{ReservationId: stRid(1)},
			&messages.PaymentAborted{ReservationId: stRid(1), Code: messages.CodeInsufficientBalance}},
			cmd:  &messages.CancelReservation{ReservationId: stRid(1), UserId: 1},
			want: &messages.HoldCancelled{ReservationId: stRid(1), AtMs: stMs(0)}},
		{name: "paid", given: []proto.Message{held, &messages.PaymentStarted{ReservationId: stRid(1)},
			&messages.ReservationConfirmed{ReservationId: stRid(1)}},
			cmd: &messages.CancelReservation{ReservationId: stRid(1), UserId: 1}, wantRej: messages.CodeAlreadyPaid},
		{name: "expired", given: []proto.Message{held, &messages.HoldExpired{ReservationId: stRid(1)}},
			cmd: &messages.CancelReservation{ReservationId: stRid(1), UserId: 1}, wantRej: messages.CodeHoldExpired},
		{name: "cancelled twice", given: []proto.Message{held, &messages.HoldCancelled{ReservationId: stRid(1)}},
			cmd: &messages.CancelReservation{ReservationId: stRid(1), UserId: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rej := decideCancel(stGiven(tt.given...), tt.cmd, stNow())
			if stCode(rej) != tt.wantRej {
				t.Fatalf("rejection %v, want %q", rej, tt.wantRej)
			}
			if (got == nil) != (tt.want == nil) || (got != nil && !proto.Equal(got, tt.want)) {
				t.Fatalf("event %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSeatDecidePay(t *testing.T) {
	held := stHeld(1, 1, 1, time.Minute)
	started := &messages.PaymentStarted{ReservationId: stRid(1), Amount: stPrice, IdempotencyKey: "k", AtMs: stMs(0)}
	confirmed := &messages.ReservationConfirmed{ReservationId: stRid(1), PaidAtMs: stMs(0), BalanceAfter: 5}
	pay := func(n, user, amount int64, key string) *messages.PayReservation {
		return &messages.PayReservation{ReservationId: stRid(n), UserId: user, Amount: amount, IdempotencyKey: key}
	}
	tests := []struct {
		name       string
		given      []proto.Message
		cmd        *messages.PayReservation
		at         time.Duration
		wantAction payAction
		wantRej    string
	}{
		{name: "start", given: []proto.Message{held}, cmd: pay(1, 1, stPrice, "k"), wantAction: payStart},
		{name: "start without key", given: []proto.Message{held}, cmd: pay(1, 1, stPrice, ""), wantAction: payStart},
		{name: "not found", given: []proto.Message{held}, cmd: pay(2, 1, stPrice, "k"), wantRej: messages.CodeReservationNotFound},
		{name: "other user", given: []proto.Message{held}, cmd: pay(1, 2, stPrice, "k"), wantRej: messages.CodeTokenUserMismatch},
		{name: "amount mismatch", given: []proto.Message{held}, cmd: pay(1, 1, stPrice-1, "k"), wantRej: messages.CodeAmountMismatch},
		{name: "cancelled", given: []proto.Message{held, &messages.HoldCancelled{ReservationId: stRid(1)}},
			cmd: pay(1, 1, stPrice, "k"), wantRej: messages.CodeReservationCancelled},
		{name: "expired", given: []proto.Message{held, &messages.HoldExpired{ReservationId: stRid(1)}},
			cmd: pay(1, 1, stPrice, "k"), wantRej: messages.CodeHoldExpired},
		{name: "past its expiry", given: []proto.Message{held}, at: time.Minute,
			cmd: pay(1, 1, stPrice, "k"), wantRej: messages.CodeHoldExpired},
		{name: "paying, same key joins", given: []proto.Message{held, started}, cmd: pay(1, 1, stPrice, "k"), wantAction: payJoin},
		{name: "paying past expiry still joins", given: []proto.Message{held, started}, at: time.Hour,
			cmd: pay(1, 1, stPrice, "k"), wantAction: payJoin},
		{name: "paying, other key", given: []proto.Message{held, started}, cmd: pay(1, 1, stPrice, "j"), wantRej: messages.CodePaymentInProgress},
		{name: "paying, no key", given: []proto.Message{held, started}, cmd: pay(1, 1, stPrice, ""), wantRej: messages.CodePaymentInProgress},
		{name: "paid, same key and amount", given: []proto.Message{held, started, confirmed}, cmd: pay(1, 1, stPrice, "k"), wantAction: payDone},
		{name: "paid, other key", given: []proto.Message{held, started, confirmed}, cmd: pay(1, 1, stPrice, "j"), wantRej: messages.CodeAlreadyPaid},
		{name: "paid, same key other amount", given: []proto.Message{held, started, confirmed}, cmd: pay(1, 1, stPrice+1, "k"), wantRej: messages.CodeAlreadyPaid},
		{name: "paid without key", given: []proto.Message{held, &messages.PaymentStarted{ReservationId: stRid(1)}, confirmed},
			cmd: pay(1, 1, stPrice, ""), wantRej: messages.CodeAlreadyPaid},
		{name: "aborted can start again", given: []proto.Message{held, started,
			&messages.PaymentAborted{ReservationId: stRid(1), Code: messages.CodeInsufficientBalance}},
			cmd: pay(1, 1, stPrice, "k"), wantAction: payStart},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := stNow().Add(tt.at)
			action, ev, rej := decidePay(stGiven(tt.given...), tt.cmd, now)
			if stCode(rej) != tt.wantRej {
				t.Fatalf("rejection %v, want %q", rej, tt.wantRej)
			}
			if action != tt.wantAction {
				t.Fatalf("action %d, want %d", action, tt.wantAction)
			}
			if action == payStart {
				want := &messages.PaymentStarted{ReservationId: tt.cmd.ReservationId, Amount: tt.cmd.Amount,
					IdempotencyKey: tt.cmd.IdempotencyKey, AtMs: now.UnixMilli()}
				if !proto.Equal(ev, want) {
					t.Fatalf("event %v, want %v", ev, want)
				}
			} else if ev != nil {
				t.Fatalf("unexpected event %v", ev)
			}
		})
	}
}

// TestRefusedPaymentLeavesUpdateAt: a payment started then aborted (the
// wallet refused it) leaves the reservation as the contract shows it —
// HELD, with the same updateAt. Before, both events set UpdateAtMs, so a
// 409 INSUFFICIENT_BALANCE looked like a change.
func TestRefusedPaymentLeavesUpdateAt(t *testing.T) {
	s := stGiven(
		stHeld(1, 1, 1, time.Minute),
		&messages.PaymentStarted{ReservationId: stRid(1), Amount: stPrice, IdempotencyKey: "y", AtMs: stMs(6 * time.Second)},
		&messages.PaymentAborted{ReservationId: stRid(1), AtMs: stMs(7 * time.Second)},
	)
	want := &messages.Reservation{Id: stRid(1), UserId: 1, SeatId: stSeatID(1), ConcertOptionId: stOption, Price: stPrice,
		Status: messages.ReservationStatus_RESERVATION_HELD, ExpiresAtMs: stMs(time.Minute), CreatedAtMs: stMs(0), UpdateAtMs: stMs(0)}
	if got := s.reservations[stRid(1)]; !proto.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

func TestSeatApply(t *testing.T) {
	s := stGiven(
		stHeld(1, 1, 1, time.Minute),
		stHeld(2, 1, 2, time.Minute),
		stHeld(3, 2, 3, time.Minute),
		stHeld(4, 2, 4, time.Minute),
		&messages.HoldCancelled{ReservationId: stRid(1), AtMs: stMs(time.Second)},
		&messages.HoldExpired{ReservationId: stRid(2), AtMs: stMs(2 * time.Second)},
		&messages.PaymentStarted{ReservationId: stRid(3), Amount: stPrice, IdempotencyKey: "k", AtMs: stMs(3 * time.Second)},
		&messages.ReservationConfirmed{ReservationId: stRid(3), PaidAtMs: stMs(4 * time.Second), BalanceAfter: 77},
		&messages.PaymentStarted{ReservationId: stRid(4), Amount: stPrice, IdempotencyKey: "x", AtMs: stMs(5 * time.Second)},
		// events about unknown or finished reservations change nothing
		&messages.HoldExpired{ReservationId: stRid(1), AtMs: stMs(time.Hour)},
		&messages.HoldCancelled{ReservationId: stRid(99)},
	)
	want := map[int64]*messages.Reservation{
		stRid(1): {Id: stRid(1), UserId: 1, SeatId: stSeatID(1), ConcertOptionId: stOption, Price: stPrice,
			Status: messages.ReservationStatus_RESERVATION_CANCELLED, ExpiresAtMs: stMs(time.Minute),
			CreatedAtMs: stMs(0), UpdateAtMs: stMs(time.Second)},
		stRid(2): {Id: stRid(2), UserId: 1, SeatId: stSeatID(2), ConcertOptionId: stOption, Price: stPrice,
			Status: messages.ReservationStatus_RESERVATION_EXPIRED, ExpiresAtMs: stMs(time.Minute),
			CreatedAtMs: stMs(0), UpdateAtMs: stMs(2 * time.Second)},
		stRid(3): {Id: stRid(3), UserId: 2, SeatId: stSeatID(3), ConcertOptionId: stOption, Price: stPrice,
			Status: messages.ReservationStatus_RESERVATION_CONFIRMED, ExpiresAtMs: stMs(time.Minute),
			CreatedAtMs: stMs(0), UpdateAtMs: stMs(4 * time.Second), IdempotencyKey: "k",
			PaidAmount: stPrice, PaidAtMs: stMs(4 * time.Second), BalanceAfter: 77},
		stRid(4): {Id: stRid(4), UserId: 2, SeatId: stSeatID(4), ConcertOptionId: stOption, Price: stPrice,
			Status: messages.ReservationStatus_RESERVATION_HELD, ExpiresAtMs: stMs(time.Minute),
			CreatedAtMs: stMs(0), UpdateAtMs: stMs(0), IdempotencyKey: "x", Paying: true},
	}
	if len(s.reservations) != len(want) {
		t.Fatalf("%d reservations, want %d", len(s.reservations), len(want))
	}
	for id, w := range want {
		if !proto.Equal(s.reservations[id], w) {
			t.Errorf("reservation %d:\n got %v\nwant %v", id, s.reservations[id], w)
		}
	}
	if got := freeSeats(s, stCatalog(5)); len(got) != 3 || got[0] != stSeatID(1) || got[1] != stSeatID(2) || got[2] != stSeatID(5) {
		t.Errorf("free seats %v, want seats 1, 2, 5", got)
	}
	if s.nextNo != 5 || len(s.live) != 1 || !s.paying[stRid(4)] || s.userHeld[2] != 1 || s.userHeld[1] != 0 {
		t.Errorf("indexes: next %d live %v paying %v userHeld %v", s.nextNo, s.live, s.paying, s.userHeld)
	}

	// Snapshot → Restore gives the same state, indexes included.
	r := newSeatState(stOption)
	if err := r.Restore(s.Snapshot()); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(r.Snapshot(), s.Snapshot()) {
		t.Fatalf("restored %v\nwant %v", r.Snapshot(), s.Snapshot())
	}
	if r.nextNo != s.nextNo || len(r.live) != len(s.live) || len(r.holder) != len(s.holder) ||
		len(r.paying) != len(s.paying) || r.userHeld[2] != s.userHeld[2] {
		t.Fatalf("restored indexes differ: %+v vs %+v", r, s)
	}
	if err := r.Restore(&messages.WalletSnapshot{}); err == nil {
		t.Fatal("restoring a wallet snapshot must fail")
	}
}
