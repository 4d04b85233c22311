package actors

import (
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/messages"
)

// FuzzTokenTableCheck: the token table answers a presented token only for a
// secret it issued — any other string, however close, is unknown — and
// never panics. The seed corpus is in testdata/fuzz/FuzzTokenTableCheck.
func FuzzTokenTableCheck(f *testing.F) {
	m := newQueueModel(QueueConfig{ActiveTokens: 2}.withDefaults())
	table := NewTokenTable()
	m.publishAll(table)
	random := rand.NewChaCha8([32]byte{1}) // fixed: the corpus stays meaningful
	secrets := map[string]int64{}
	for u := int64(1); u <= 4; u++ {
		events, secret, rej := m.decideIssue(&messages.IssueToken{UserId: u}, wqNow(), random)
		if rej != nil {
			f.Fatal(rej)
		}
		for _, e := range events {
			m.Apply(e)
		}
		secrets[secret] = u
		f.Add(secret)
		f.Add(secret[:len(secret)-1])
		f.Add(" " + secret)
	}
	table.apply(m.takeChanges())
	for _, s := range []string{"", "\x00", "\xff\xfe", "Bearer x", string(make([]byte, 300))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, ok := table.Check(token, wqNow())
		user, issued := secrets[token]
		if ok != issued || (ok && c.UserID != user) {
			t.Fatalf("Check(%q) = %+v %v; issued to %d: %v", token, c, ok, user, issued)
		}
	})
}

// FuzzWalletIdempotencyKey: whatever the key, a keyed charge adds once, a
// retry with its key answers the first charge, the same key with another
// amount is refused, a keyed payment likewise — and replaying the journaled
// events, or restoring a snapshot, gives the same wallet. The seed corpus
// is in testdata/fuzz/FuzzWalletIdempotencyKey.
func FuzzWalletIdempotencyKey(f *testing.F) {
	for _, k := range []string{"k", "pay-1", "가나다", "\xff", "a\x00b", " ", "", string(make([]byte, 256))} {
		f.Add(k, int64(100))
	}
	f.Fuzz(func(t *testing.T, key string, amount int64) {
		amount = 1 + abs(amount)%MaxCharge
		now := wqNow()
		w := newWalletModel(1, 4, time.Hour)
		var journal []proto.Message
		step := func(events []proto.Message) {
			for _, e := range events {
				w.Apply(e)
				journal = append(journal, e)
			}
		}
		charge := func(a int64) (*messages.Charge, *messages.Rejection, int) {
			events, first, rej := w.decideCharge(&messages.ChargePoints{UserId: 1, Amount: a, IdempotencyKey: key}, now)
			step(events)
			return first, rej, len(events)
		}
		if _, rej, n := charge(amount); rej != nil || n != 1 {
			t.Fatalf("first charge: %v, %d events", rej, n)
		}
		first, rej, n := charge(amount)
		switch {
		case key == "" && (rej != nil || n != 1 || w.balance != 2*amount):
			t.Fatalf("an unkeyed charge again: %v, %d events, balance %d", rej, n, w.balance)
		case key != "" && (rej != nil || n != 0 || first.GetAmount() != amount || w.balance != amount):
			t.Fatalf("a retry with key %q: %v, %d events, balance %d", key, rej, n, w.balance)
		}
		if key != "" {
			if _, rej, n := charge(amount%MaxCharge + 1); rej.GetCode() != messages.CodeIdempotencyKeyReused || n != 0 {
				t.Fatalf("key %q with another amount: %v, %d events", key, rej, n)
			}
		}
		// A keyed payment of what was charged, and its retry.
		debit := &messages.DebitPayment{UserId: 1, ReservationId: 7, Amount: amount, IdempotencyKey: key}
		events, _, rej := w.decideDebit(debit, now)
		if rej != nil || len(events) != 1 {
			t.Fatalf("payment: %v", rej)
		}
		step(events)
		if events, p, rej := w.decideDebit(debit, now); rej != nil || len(events) != 0 || p.GetReservationId() != 7 {
			t.Fatalf("payment retry: %v %v", rej, p)
		}
		// Replay and snapshot give the same wallet.
		replayed := newWalletModel(1, 4, time.Hour)
		for _, e := range journal {
			replayed.Apply(e)
		}
		restored := newWalletModel(1, 4, time.Hour)
		if err := restored.Restore(w.Snapshot()); err != nil {
			t.Fatal(err)
		}
		for name, o := range map[string]*walletModel{"replay": replayed, "restore": restored} {
			if o.balance != w.balance || !proto.Equal(o.Snapshot(), w.Snapshot()) {
				t.Fatalf("%s differs: balance %d, want %d", name, o.balance, w.balance)
			}
		}
	})
}

func abs(n int64) int64 {
	if n < 0 {
		if n == -n { // math.MinInt64
			return 0
		}
		return -n
	}
	return n
}
