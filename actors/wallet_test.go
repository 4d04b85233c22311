package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/actors/actortest"
	"github.com/concert/ticketing/cluster"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
	"github.com/concert/ticketing/persistence/pgtest"
)

// ---- helpers shared by the wallet, queue and token tests ----

func wqSnapshotSeq(j *actortest.MemJournal, actorID string) int64 {
	s, _ := j.Snapshot(actorID)
	return s.Seq
}

// wqClock is a settable clock for Now.
type wqClock struct{ ns atomic.Int64 }

func newWQClock() *wqClock {
	c := &wqClock{}
	c.ns.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *wqClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *wqClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func wqLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// wqTracked wraps a producer to count incarnations and stops and to keep
// the last actor made.
type wqTracked struct {
	produce  cluster.Producer
	started  atomic.Int32
	stopped  atomic.Int32
	mu       sync.Mutex
	lastMade actor.Actor
}

func (w *wqTracked) producer() cluster.Producer {
	return func(identity string) actor.Actor {
		a := w.produce(identity)
		w.mu.Lock()
		w.lastMade = a
		w.mu.Unlock()
		return &wqWatched{inner: a, w: w}
	}
}

func (w *wqTracked) last() actor.Actor {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastMade
}

type wqWatched struct {
	inner actor.Actor
	w     *wqTracked
}

func (a *wqWatched) Receive(ctx actor.Context) {
	a.inner.Receive(ctx)
	switch ctx.Message().(type) {
	case *actor.Started:
		a.w.started.Add(1)
	case *actor.Stopped:
		a.w.stopped.Add(1)
	}
}

func wqRequest[T proto.Message](t *testing.T, r cluster.Router, kind, id string, msg proto.Message) (T, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var zero T
	res, err := r.Request(ctx, kind, id, msg)
	if err != nil {
		return zero, err
	}
	v, ok := res.(T)
	if !ok {
		t.Fatalf("reply %T, want %T", res, zero)
	}
	return v, nil
}

func wqCode(err error) string {
	var rej *messages.Rejection
	if errors.As(err, &rej) {
		return rej.GetCode()
	}
	if err != nil {
		return "error: " + err.Error()
	}
	return ""
}

// ---- pure decisions ----

func wqNow() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

// walletGiven builds a model from events.
func walletGiven(events ...proto.Message) *walletModel {
	m := newWalletModel(7, 2, walletDefaultRetention)
	for _, e := range events {
		m.Apply(e)
	}
	return m
}

func TestWalletDecideCharge(t *testing.T) {
	now := wqNow()
	tests := []struct {
		name    string
		given   []proto.Message
		amount  int64
		want    []proto.Message
		wantRej string
	}{
		{"first charge", nil, 500, []proto.Message{&messages.PointsCharged{Amount: 500, BalanceAfter: 500, AtMs: now.UnixMilli()}}, ""},
		{"adds up", []proto.Message{&messages.PointsCharged{Amount: 100}}, 50, []proto.Message{&messages.PointsCharged{Amount: 50, BalanceAfter: 150, AtMs: now.UnixMilli()}}, ""},
		{"zero", nil, 0, nil, messages.CodeInvalidAmount},
		{"negative", nil, -5, nil, messages.CodeInvalidAmount},
		{"max charge", nil, MaxCharge, []proto.Message{&messages.PointsCharged{Amount: MaxCharge, BalanceAfter: MaxCharge, AtMs: now.UnixMilli()}}, ""},
		{"above max charge", nil, MaxCharge + 1, nil, messages.CodeInvalidAmount},
		{"reaches max balance", []proto.Message{&messages.PointsCharged{Amount: MaxBalance - 10}}, 10,
			[]proto.Message{&messages.PointsCharged{Amount: 10, BalanceAfter: MaxBalance, AtMs: now.UnixMilli()}}, ""},
		{"beyond max balance", []proto.Message{&messages.PointsCharged{Amount: MaxBalance - 10}}, 11, nil, messages.CodeBalanceLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := walletGiven(tt.given...)
			got, _, rej := m.decideCharge(&messages.ChargePoints{UserId: 7, Amount: tt.amount}, now)
			checkDecision(t, got, rej, tt.want, tt.wantRej)
		})
	}
}

func checkDecision(t *testing.T, got []proto.Message, rej *messages.Rejection, want []proto.Message, wantRej string) {
	t.Helper()
	if rej.GetCode() != wantRej {
		t.Fatalf("rejection %v, want %q", rej, wantRej)
	}
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("event %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestWalletDecideDebit(t *testing.T) {
	now := wqNow()
	ms := now.UnixMilli()
	funded := []proto.Message{&messages.PointsCharged{Amount: 1000}}
	paid := append(funded[:1:1], &messages.PaymentDebited{ReservationId: 5, Amount: 300, BalanceAfter: 700, IdempotencyKey: "k1", AtMs: 1})
	tests := []struct {
		name        string
		given       []proto.Message
		cmd         *messages.DebitPayment
		want        []proto.Message
		wantPayment int64 // reservation id of a payment answered again
		wantRej     string
	}{
		{"debits", funded, &messages.DebitPayment{ReservationId: 5, Amount: 300, IdempotencyKey: "k1"},
			[]proto.Message{&messages.PaymentDebited{ReservationId: 5, Amount: 300, BalanceAfter: 700, IdempotencyKey: "k1", AtMs: ms}}, 0, ""},
		{"whole balance", funded, &messages.DebitPayment{ReservationId: 5, Amount: 1000},
			[]proto.Message{&messages.PaymentDebited{ReservationId: 5, Amount: 1000, BalanceAfter: 0, AtMs: ms}}, 0, ""},
		{"insufficient", funded, &messages.DebitPayment{ReservationId: 5, Amount: 1001}, nil, 0, messages.CodeInsufficientBalance},
		{"empty wallet", nil, &messages.DebitPayment{ReservationId: 5, Amount: 1}, nil, 0, messages.CodeInsufficientBalance},
		{"zero amount", funded, &messages.DebitPayment{ReservationId: 5, Amount: 0}, nil, 0, messages.CodeInvalidAmount},
		{"negative amount", funded, &messages.DebitPayment{ReservationId: 5, Amount: -1}, nil, 0, messages.CodeInvalidAmount},
		{"no reservation", funded, &messages.DebitPayment{ReservationId: 0, Amount: 1}, nil, 0, messages.CodeInvalidRequest},
		{"same reservation again", paid, &messages.DebitPayment{ReservationId: 5, Amount: 300, IdempotencyKey: "k1"}, nil, 5, ""},
		{"same reservation, no key", paid, &messages.DebitPayment{ReservationId: 5, Amount: 300}, nil, 5, ""},
		{"same reservation, other key", paid, &messages.DebitPayment{ReservationId: 5, Amount: 300, IdempotencyKey: "k2"}, nil, 5, ""},
		{"key for another reservation", paid, &messages.DebitPayment{ReservationId: 6, Amount: 300, IdempotencyKey: "k1"}, nil, 0, messages.CodeIdempotencyKeyReused},
		{"key with another amount", paid, &messages.DebitPayment{ReservationId: 5, Amount: 301, IdempotencyKey: "k1"}, nil, 0, messages.CodeIdempotencyKeyReused},
		{"another reservation, new key", paid, &messages.DebitPayment{ReservationId: 6, Amount: 700, IdempotencyKey: "k2"},
			[]proto.Message{&messages.PaymentDebited{ReservationId: 6, Amount: 700, BalanceAfter: 0, IdempotencyKey: "k2", AtMs: ms}}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := walletGiven(tt.given...)
			got, p, rej := m.decideDebit(tt.cmd, now)
			checkDecision(t, got, rej, tt.want, tt.wantRej)
			if p.GetReservationId() != tt.wantPayment {
				t.Fatalf("payment answered %v, want reservation %d", p, tt.wantPayment)
			}
			if p != nil && p.GetAmount() != 300 {
				t.Fatalf("payment answered again changed: %v", p)
			}
		})
	}
}

func TestWalletDecideHoldSlot(t *testing.T) {
	now := wqNow()
	ms := now.UnixMilli()
	live := ms + 60_000
	tests := []struct {
		name    string
		given   []proto.Message
		cmd     proto.Message
		want    []proto.Message
		wantRej string
	}{
		{"first slot", nil, &messages.TakeHoldSlot{ReservationId: 1, ExpiresAtMs: live},
			[]proto.Message{&messages.HoldSlotTaken{ReservationId: 1, ExpiresAtMs: live}}, ""},
		{"same reservation again", []proto.Message{&messages.HoldSlotTaken{ReservationId: 1, ExpiresAtMs: live}},
			&messages.TakeHoldSlot{ReservationId: 1, ExpiresAtMs: live}, nil, ""},
		{"limit reached", []proto.Message{
			&messages.HoldSlotTaken{ReservationId: 1, ExpiresAtMs: live},
			&messages.HoldSlotTaken{ReservationId: 2, ExpiresAtMs: live},
		}, &messages.TakeHoldSlot{ReservationId: 3, ExpiresAtMs: live}, nil, messages.CodeHoldLimit},
		{"released slot frees room", []proto.Message{
			&messages.HoldSlotTaken{ReservationId: 1, ExpiresAtMs: live},
			&messages.HoldSlotTaken{ReservationId: 2, ExpiresAtMs: live},
			&messages.HoldSlotReleased{ReservationId: 1},
		}, &messages.TakeHoldSlot{ReservationId: 3, ExpiresAtMs: live},
			[]proto.Message{&messages.HoldSlotTaken{ReservationId: 3, ExpiresAtMs: live}}, ""},
		{"expired slots are released on the way", []proto.Message{
			&messages.HoldSlotTaken{ReservationId: 1, ExpiresAtMs: ms},
			&messages.HoldSlotTaken{ReservationId: 2, ExpiresAtMs: live},
		}, &messages.TakeHoldSlot{ReservationId: 3, ExpiresAtMs: live},
			[]proto.Message{&messages.HoldSlotReleased{ReservationId: 1}, &messages.HoldSlotTaken{ReservationId: 3, ExpiresAtMs: live}}, ""},
		{"expired slot of the same reservation is taken anew", []proto.Message{
			&messages.HoldSlotTaken{ReservationId: 1, ExpiresAtMs: ms - 1},
		}, &messages.TakeHoldSlot{ReservationId: 1, ExpiresAtMs: live},
			[]proto.Message{&messages.HoldSlotReleased{ReservationId: 1}, &messages.HoldSlotTaken{ReservationId: 1, ExpiresAtMs: live}}, ""},
		{"release with a refusal", []proto.Message{
			&messages.HoldSlotTaken{ReservationId: 1, ExpiresAtMs: ms},
			&messages.HoldSlotTaken{ReservationId: 2, ExpiresAtMs: live},
			&messages.HoldSlotTaken{ReservationId: 4, ExpiresAtMs: live},
		}, &messages.TakeHoldSlot{ReservationId: 3, ExpiresAtMs: live},
			[]proto.Message{&messages.HoldSlotReleased{ReservationId: 1}}, messages.CodeHoldLimit},
		{"release present", []proto.Message{&messages.HoldSlotTaken{ReservationId: 1, ExpiresAtMs: live}},
			&messages.ReleaseHoldSlot{ReservationId: 1}, []proto.Message{&messages.HoldSlotReleased{ReservationId: 1}}, ""},
		{"release absent", nil, &messages.ReleaseHoldSlot{ReservationId: 1}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := walletGiven(tt.given...)
			var got []proto.Message
			var rej *messages.Rejection
			switch c := tt.cmd.(type) {
			case *messages.TakeHoldSlot:
				got, rej = m.decideTakeSlot(c, now)
			case *messages.ReleaseHoldSlot:
				got = m.decideReleaseSlot(c)
			}
			checkDecision(t, got, rej, tt.want, tt.wantRej)
		})
	}
}

func TestWalletApplyAndSnapshot(t *testing.T) {
	m := walletGiven(
		&messages.PointsCharged{Amount: 1000, BalanceAfter: 1000},
		&messages.PaymentDebited{ReservationId: 5, Amount: 300, BalanceAfter: 700, IdempotencyKey: "k"},
		&messages.PaymentDebited{ReservationId: 6, Amount: 200, BalanceAfter: 500},
		&messages.HoldSlotTaken{ReservationId: 8, ExpiresAtMs: 10},
		&messages.HoldSlotTaken{ReservationId: 9, ExpiresAtMs: 20},
		&messages.HoldSlotReleased{ReservationId: 8},
		&messages.HoldSlotReleased{ReservationId: 77},
	)
	want := &messages.WalletSnapshot{
		Balance:      500,
		ChargedTotal: 1000,
		Payments: []*messages.Payment{
			{ReservationId: 5, Amount: 300, BalanceAfter: 700, IdempotencyKey: "k"},
			{ReservationId: 6, Amount: 200, BalanceAfter: 500},
		},
		Slots: []*messages.HoldSlot{{ReservationId: 9, ExpiresAtMs: 20}},
	}
	if got := m.Snapshot(); !proto.Equal(got, want) {
		t.Fatalf("snapshot %v, want %v", got, want)
	}
	r := newWalletModel(7, 2, walletDefaultRetention)
	if err := r.Restore(m.Snapshot()); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(r.Snapshot(), want) || r.lookup("k").GetReservationId() != 5 || r.payments[6] == nil {
		t.Fatalf("restored %v", r.Snapshot())
	}
	if err := r.Restore(&messages.QueueSnapshot{}); err == nil {
		t.Fatal("restore took a queue snapshot")
	}
}

// ---- the actor ----

type walletHarness struct {
	journal *actortest.MemJournal
	tracked *wqTracked
	local   *cluster.Local
	clock   *wqClock
}

func startWallets(t *testing.T, journal *actortest.MemJournal, cfg WalletConfig) *walletHarness {
	t.Helper()
	h := &walletHarness{journal: journal, clock: newWQClock()}
	cfg.Journal = journal
	if cfg.Now == nil {
		cfg.Now = h.clock.Now
	}
	cfg.Logger = wqLogger()
	h.tracked = &wqTracked{produce: NewWalletProducer(cfg)}
	system := actor.NewActorSystem()
	h.local = cluster.NewLocal(system, map[string]cluster.Producer{"wallet": h.tracked.producer()})
	t.Cleanup(h.local.Stop)
	return h
}

func (h *walletHarness) charge(t *testing.T, user string, amount int64) (*messages.WalletResult, error) {
	t.Helper()
	return wqRequest[*messages.WalletResult](t, h.local, "wallet", user, &messages.ChargePoints{Amount: amount})
}

func (h *walletHarness) debit(t *testing.T, user string, rid, amount int64, key string) (*messages.WalletResult, error) {
	t.Helper()
	return wqRequest[*messages.WalletResult](t, h.local, "wallet", user,
		&messages.DebitPayment{ReservationId: rid, Amount: amount, IdempotencyKey: key})
}

func (h *walletHarness) balance(t *testing.T, user string) int64 {
	t.Helper()
	res, err := wqRequest[*messages.WalletResult](t, h.local, "wallet", user, &messages.GetBalance{})
	if err != nil {
		t.Fatal(err)
	}
	return res.GetBalance()
}

// replayWallet rebuilds a wallet's state from the journal alone.
func replayWallet(t *testing.T, j *actortest.MemJournal, user string) *walletModel {
	t.Helper()
	m := newWalletModel(0, 4, walletDefaultRetention)
	for _, e := range journaledEvents(t, j, walletJournalPrefix+user) {
		m.Apply(e)
	}
	return m
}

func checkConservation(t *testing.T, m *walletModel) {
	t.Helper()
	var paid int64
	for _, p := range m.paymentList {
		paid += p.GetAmount()
		if p.GetBalanceAfter() < 0 {
			t.Fatalf("payment %d left balance %d", p.GetReservationId(), p.GetBalanceAfter())
		}
	}
	if m.balance < 0 || m.chargedTotal != m.balance+paid {
		t.Fatalf("money not conserved: charged %d, balance %d, paid %d", m.chargedTotal, m.balance, paid)
	}
}

func TestWalletConcurrentChargesAndDebits(t *testing.T) {
	j := actortest.NewMemJournal()
	j.Delay(time.Millisecond) // let writes overlap with new commands
	h := startWallets(t, j, WalletConfig{SnapshotEvery: 50})
	const n = 1000
	start := make(chan struct{})
	var wg sync.WaitGroup
	var charged, debited, refused atomic.Int64
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			if i%2 == 0 {
				amount := int64(1 + i%7)
				if _, err := h.charge(t, "1", amount); err != nil {
					errs <- err
					return
				}
				charged.Add(amount)
				return
			}
			amount := int64(1 + i%5)
			res, err := h.debit(t, "1", int64(i), amount, fmt.Sprintf("key-%d", i))
			switch {
			case wqCode(err) == messages.CodeInsufficientBalance:
				refused.Add(1)
			case err != nil:
				errs <- err
			case res.GetBalance() < 0 || res.GetPayment().GetAmount() != amount:
				errs <- fmt.Errorf("debit %d answered %v", i, res)
			default:
				debited.Add(amount)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got, want := h.balance(t, "1"), charged.Load()-debited.Load(); got != want {
		t.Fatalf("balance %d, want %d (charged %d, debited %d)", got, want, charged.Load(), debited.Load())
	}
	m := replayWallet(t, j, "1")
	checkConservation(t, m)
	if m.balance != charged.Load()-debited.Load() || m.chargedTotal != charged.Load() {
		t.Fatalf("journal: balance %d charged %d", m.balance, m.chargedTotal)
	}
	t.Logf("charged %d, debited %d, refused %d debits", charged.Load(), debited.Load(), refused.Load())
}

func TestWalletIdempotentDebitAndKeyReuse(t *testing.T) {
	h := startWallets(t, actortest.NewMemJournal(), WalletConfig{})
	if _, err := h.charge(t, "3", 1000); err != nil {
		t.Fatal(err)
	}
	first, err := h.debit(t, "3", 10, 400, "abc")
	if err != nil || first.GetBalance() != 600 || first.GetPayment().GetBalanceAfter() != 600 {
		t.Fatalf("debit: %v %v", first, err)
	}
	// Concurrent retries of the same payment debit once.
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			<-start
			res, err := h.debit(t, "3", 10, 400, "abc")
			if err != nil || !proto.Equal(res.GetPayment(), first.GetPayment()) {
				t.Errorf("retry: %v %v", res, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if b := h.balance(t, "3"); b != 600 {
		t.Fatalf("balance %d after retries", b)
	}
	if _, err := h.debit(t, "3", 11, 400, "abc"); wqCode(err) != messages.CodeIdempotencyKeyReused {
		t.Fatalf("key reuse: %v", err)
	}
	if _, err := h.debit(t, "3", 10, 500, "abc"); wqCode(err) != messages.CodeIdempotencyKeyReused {
		t.Fatalf("key reuse with another amount: %v", err)
	}
	found, err := wqRequest[*messages.WalletResult](t, h.local, "wallet", "3", &messages.LookupPayment{IdempotencyKey: "abc"})
	if err != nil || found.GetPayment().GetReservationId() != 10 {
		t.Fatalf("lookup: %v %v", found, err)
	}
	missing, err := wqRequest[*messages.WalletResult](t, h.local, "wallet", "3", &messages.LookupPayment{IdempotencyKey: "nope"})
	if err != nil || missing.Payment != nil || missing.GetBalance() != 600 || missing.GetUserId() != 3 {
		t.Fatalf("lookup of an unknown key: %v %v", missing, err)
	}
	if _, err := h.debit(t, "3", 12, 601, ""); wqCode(err) != messages.CodeInsufficientBalance {
		t.Fatalf("overdraft: %v", err)
	}
	if _, err := h.charge(t, "3", MaxCharge+1); wqCode(err) != messages.CodeInvalidAmount {
		t.Fatalf("huge charge: %v", err)
	}
	if _, err := wqRequest[*messages.WalletResult](t, h.local, "wallet", "x", &messages.GetBalance{}); wqCode(err) != messages.CodeInvalidRequest {
		t.Fatalf("bad identity: %v", err)
	}
	checkConservation(t, replayWallet(t, h.journal, "3"))
}

func TestWalletHoldSlots(t *testing.T) {
	h := startWallets(t, actortest.NewMemJournal(), WalletConfig{HoldLimit: 2})
	take := func(rid int64, ttl time.Duration) error {
		_, err := wqRequest[*messages.WalletResult](t, h.local, "wallet", "4",
			&messages.TakeHoldSlot{ReservationId: rid, ExpiresAtMs: h.clock.Now().Add(ttl).UnixMilli()})
		return err
	}
	if err := take(1, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := take(2, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := take(1, time.Minute); err != nil {
		t.Fatalf("same reservation again: %v", err)
	}
	if err := take(3, time.Minute); wqCode(err) != messages.CodeHoldLimit {
		t.Fatalf("third hold: %v", err)
	}
	if _, err := wqRequest[*messages.WalletResult](t, h.local, "wallet", "4", &messages.ReleaseHoldSlot{ReservationId: 2}); err != nil {
		t.Fatal(err)
	}
	if err := take(3, time.Minute); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	h.clock.Advance(time.Minute) // slots 1 and 3 run out
	if err := take(4, time.Minute); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if err := take(5, time.Minute); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if err := take(6, time.Minute); wqCode(err) != messages.CodeHoldLimit {
		t.Fatalf("limit after expiry: %v", err)
	}
	m := replayWallet(t, h.journal, "4")
	if len(m.slots) != 2 || m.slots[0].GetReservationId() != 4 || m.slots[1].GetReservationId() != 5 {
		t.Fatalf("slots %v: expired ones should be released", m.slots)
	}
}

// TestWalletReplayAndPassivation checks that an idle wallet stops and that
// its next incarnation, from snapshot and journal, has the same state.
func TestWalletReplayAndPassivation(t *testing.T) {
	j := actortest.NewMemJournal()
	h := startWallets(t, j, WalletConfig{IdleTTL: 50 * time.Millisecond, SnapshotEvery: 7})
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 40 {
		switch rng.IntN(4) {
		case 0, 1:
			_, _ = h.charge(t, "9", rng.Int64N(100)+1)
		case 2:
			_, _ = h.debit(t, "9", int64(i), rng.Int64N(150)+1, fmt.Sprintf("k%d", i))
		case 3:
			_, _ = wqRequest[*messages.WalletResult](t, h.local, "wallet", "9",
				&messages.TakeHoldSlot{ReservationId: int64(i), ExpiresAtMs: h.clock.Now().Add(time.Duration(rng.IntN(3)) * time.Second).UnixMilli()})
			h.clock.Advance(time.Second)
		}
	}
	asleep := func() bool { return h.tracked.stopped.Load() == h.tracked.started.Load() }
	actortest.Eventually(t, 5*time.Second, asleep, "the wallet to passivate")
	live := h.tracked.last().(*walletActor).model.Snapshot()
	if wqSnapshotSeq(j, walletJournalPrefix+"9") == 0 {
		t.Fatal("no snapshot taken")
	}
	incarnations := h.tracked.started.Load()
	before := h.balance(t, "9") // a new incarnation
	if got := h.tracked.started.Load(); got != incarnations+1 {
		t.Fatalf("%d incarnations, want %d", got, incarnations+1)
	}
	if before != live.(*messages.WalletSnapshot).GetBalance() {
		t.Fatalf("balance %d after recovery, want %d", before, live.(*messages.WalletSnapshot).GetBalance())
	}
	actortest.Eventually(t, 5*time.Second, asleep, "the wallet to passivate again")
	recovered := h.tracked.last().(*walletActor).model.Snapshot()
	if !proto.Equal(live, recovered) {
		t.Fatalf("recovered state %v\nwant %v", recovered, live)
	}
	fromJournal := replayWallet(t, j, "9").Snapshot()
	if !proto.Equal(live, fromJournal) {
		t.Fatalf("replayed state %v\nwant %v", fromJournal, live)
	}
	checkConservation(t, replayWallet(t, j, "9"))
}

// ---- against PostgreSQL ----

// TestWalletAndQueueOnPostgres runs the money and the line through the real
// journal: concurrent charges and debits conserve money, and a restarted
// queue keeps its line and active set.
func TestWalletAndQueueOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	journal := persistence.NewJournal(pgtest.NewDatabase(t), persistence.JournalOptions{})
	t.Cleanup(journal.Close)
	var _ Journal = journal

	newLocal := func(tokens *TokenTable) *cluster.Local {
		l := cluster.NewLocal(actor.NewActorSystem(), map[string]cluster.Producer{
			"wallet": NewWalletProducer(WalletConfig{Journal: journal, SnapshotEvery: 20, Logger: wqLogger()}),
			"queue": NewQueueProducer(QueueConfig{Journal: journal, Tokens: tokens, ActiveTokens: 2,
				SnapshotEvery: 5, Logger: wqLogger()}),
		})
		return l
	}
	local := newLocal(NewTokenTable())
	start := make(chan struct{})
	var wg sync.WaitGroup
	var charged, debited atomic.Int64
	for i := range 200 {
		wg.Go(func() {
			<-start
			if i%2 == 0 {
				if _, err := wqRequest[*messages.WalletResult](t, local, "wallet", "1", &messages.ChargePoints{Amount: 10}); err != nil {
					t.Errorf("charge: %v", err)
					return
				}
				charged.Add(10)
				return
			}
			_, err := wqRequest[*messages.WalletResult](t, local, "wallet", "1", &messages.DebitPayment{ReservationId: int64(i), Amount: 15})
			switch {
			case err == nil:
				debited.Add(15)
			case wqCode(err) != messages.CodeInsufficientBalance:
				t.Errorf("debit: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	var toks []string
	for u := int64(1); u <= 5; u++ {
		res, err := wqRequest[*messages.TokenResult](t, local, "queue", "main", &messages.IssueToken{UserId: u})
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, res.GetToken().GetToken())
	}
	if _, err := wqRequest[*messages.TokenResult](t, local, "queue", "main", &messages.ExpireToken{Token: toks[0], Reason: ExpiredReasonPaid}); err != nil {
		t.Fatal(err)
	}
	local.Stop()

	tokens := NewTokenTable()
	local = newLocal(tokens)
	t.Cleanup(local.Stop)
	res, err := wqRequest[*messages.WalletResult](t, local, "wallet", "1", &messages.GetBalance{})
	if err != nil || res.GetBalance() != charged.Load()-debited.Load() {
		t.Fatalf("balance after restart %v %v, want %d", res, err, charged.Load()-debited.Load())
	}
	m := newWalletModel(1, 4, walletDefaultRetention)
	err = journal.Replay(context.Background(), walletJournalPrefix+"1", 0, func(e persistence.Event) error {
		ev, err := decode(e.Type, e.Payload)
		if err == nil {
			m.Apply(ev)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	checkConservation(t, m)
	want := []struct {
		st  messages.TokenStatus
		pos int64
	}{{messages.TokenStatus_TOKEN_EXPIRED, 0}, {messages.TokenStatus_TOKEN_ACTIVE, 0}, {messages.TokenStatus_TOKEN_ACTIVE, 0},
		{messages.TokenStatus_TOKEN_WAIT, 1}, {messages.TokenStatus_TOKEN_WAIT, 2}}
	for i, tok := range toks {
		res, err := wqRequest[*messages.TokenResult](t, local, "queue", "main", &messages.GetToken{Token: tok})
		if err != nil || res.GetToken().GetStatus() != want[i].st || res.GetToken().GetPosition() != want[i].pos {
			t.Fatalf("token of user %d after restart: %v %v, want %v", i+1, res, err, want[i])
		}
	}
	if c, ok := tokens.Check(toks[0], time.Now()); !ok || !c.PaidExpired || tokens.Active() != 2 || tokens.Waiting() != 2 {
		t.Fatalf("rebuilt table: %+v, active %d waiting %d", c, tokens.Active(), tokens.Waiting())
	}
}
