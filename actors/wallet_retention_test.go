package actors

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/messages"
)

// TestWalletChargeIdempotencyKey: a charge with a key already used answers
// the first charge (its balance after, no new event); the same key with
// another amount is refused; a key past the retention window is new again.
func TestWalletChargeIdempotencyKey(t *testing.T) {
	now := wqNow()
	m := walletGiven()
	events, first, rej := m.decideCharge(&messages.ChargePoints{UserId: 7, Amount: 300, IdempotencyKey: "c-1"}, now)
	if rej != nil || first != nil || len(events) != 1 {
		t.Fatalf("first charge: %v %v %v", events, first, rej)
	}
	for _, e := range events {
		m.Apply(e)
	}
	m.Apply(&messages.PointsCharged{Amount: 50, BalanceAfter: 350, AtMs: now.UnixMilli()}) // another, unkeyed

	events, first, rej = m.decideCharge(&messages.ChargePoints{UserId: 7, Amount: 300, IdempotencyKey: "c-1"}, now)
	if rej != nil || len(events) != 0 || first.GetBalanceAfter() != 300 {
		t.Fatalf("repeat: events %v, first %v, rej %v; want the first answer (balance 300)", events, first, rej)
	}
	_, _, rej = m.decideCharge(&messages.ChargePoints{UserId: 7, Amount: 301, IdempotencyKey: "c-1"}, now)
	if rej.GetCode() != messages.CodeIdempotencyKeyReused {
		t.Fatalf("same key, other amount: %v", rej)
	}
	// A day later (any event moves the window), the key is forgotten.
	later := now.Add(walletDefaultRetention + time.Minute)
	m.Apply(&messages.PointsCharged{Amount: 1, BalanceAfter: 351, AtMs: later.UnixMilli()})
	events, first, rej = m.decideCharge(&messages.ChargePoints{UserId: 7, Amount: 300, IdempotencyKey: "c-1"}, later)
	if rej != nil || first != nil || len(events) != 1 {
		t.Fatalf("after retention: %v %v %v, want a new charge", events, first, rej)
	}
}

// TestWalletStateBoundedByRetention: a wallet with a payment and a keyed
// charge every hour for 30 days keeps only the last day's in its state and
// snapshot, and replaying the same events gives the same state.
func TestWalletStateBoundedByRetention(t *testing.T) {
	start := wqNow()
	m := walletGiven()
	var events []proto.Message
	balance := int64(0)
	for h := range 30 * 24 {
		at := start.Add(time.Duration(h) * time.Hour).UnixMilli()
		balance += 100
		events = append(events, &messages.PointsCharged{Amount: 100, BalanceAfter: balance, AtMs: at, IdempotencyKey: "k" + string(rune('a'+h%26)) + time.UnixMilli(at).Format("150405.000")})
		balance -= 10
		events = append(events, &messages.PaymentDebited{ReservationId: int64(h + 1), Amount: 10, BalanceAfter: balance, AtMs: at})
	}
	for _, e := range events {
		m.Apply(e)
	}
	if len(m.payments) > 25 || len(m.charges) > 25 {
		t.Fatalf("%d payments and %d keyed charges kept; retention is 24 h", len(m.payments), len(m.charges))
	}
	if m.balance != balance {
		t.Fatalf("balance %d, want %d", m.balance, balance)
	}
	snap := m.Snapshot().(*messages.WalletSnapshot)
	if len(snap.Payments) > 25 || len(snap.Charges) > 25 {
		t.Fatalf("snapshot holds %d payments, %d charges", len(snap.Payments), len(snap.Charges))
	}
	r := walletGiven()
	if err := r.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(r.Snapshot(), snap) {
		t.Fatal("restored state differs")
	}
	replayed := walletGiven(events...)
	if !proto.Equal(replayed.Snapshot(), snap) {
		t.Fatal("replay prunes differently from live handling")
	}
}
