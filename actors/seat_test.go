package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/concert/ticketing/actors/actortest"
	"github.com/concert/ticketing/cluster"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// Tests of the seat actor as deployed: spawned by cluster.Local next to the
// real wallet actor, journaling to actortest.MemJournal.

// ---- harness ----

// seatTestCatalog is an in-memory SeatCatalog: option stOption of concert
// stConcert with 50 seats, unless changed.
type seatTestCatalog struct {
	mu      sync.Mutex
	options map[int64]persistence.ConcertOption
	seats   map[int64][]persistence.Seat
	err     error
	loads   int           // Option calls
	stall   time.Duration // how long a failing Option call takes
}

func newSeatTestCatalog() *seatTestCatalog {
	c := &seatTestCatalog{options: map[int64]persistence.ConcertOption{}, seats: map[int64][]persistence.Seat{}}
	c.add(stOption, stConcert, 50)
	return c
}

func (c *seatTestCatalog) add(optionID, concertID int64, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.options[optionID] = persistence.ConcertOption{ID: optionID, ConcertID: concertID, Seats: n}
	for no := 1; no <= n; no++ {
		c.seats[optionID] = append(c.seats[optionID], persistence.Seat{ID: optionID*1000 + int64(no),
			OptionID: optionID, ConcertID: concertID, SeatNo: no, Price: stPrice})
	}
}

func (c *seatTestCatalog) Option(_ context.Context, id int64) (persistence.ConcertOption, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loads++
	if c.err != nil {
		time.Sleep(c.stall)
		return persistence.ConcertOption{}, c.err
	}
	o, ok := c.options[id]
	if !ok {
		return o, fmt.Errorf("option %d: %w", id, persistence.ErrNotFound)
	}
	return o, nil
}

// fail makes the catalog's reads fail with err (nil: succeed again), and
// returns the number of option loads so far.
func (c *seatTestCatalog) fail(err error) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
	return c.loads
}

func (c *seatTestCatalog) Seats(_ context.Context, id int64) ([]persistence.Seat, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	return append([]persistence.Seat(nil), c.seats[id]...), nil
}

// seatLateRouter lets producers hold a router that exists only after them.
type seatLateRouter struct{ r atomic.Pointer[cluster.Local] }

func (l *seatLateRouter) Request(ctx context.Context, kind, identity string, msg proto.Message) (proto.Message, error) {
	return l.r.Load().Request(ctx, kind, identity, msg)
}

func (l *seatLateRouter) Send(kind, identity string, msg proto.Message) {
	l.r.Load().Send(kind, identity, msg)
}

// RequestAsync makes the seats ask their wallets as they do in a node
// (node.lateRouter): without a goroutine waiting.
func (l *seatLateRouter) RequestAsync(kind, identity string, msg proto.Message, timeout time.Duration, then func(proto.Message, error)) {
	l.r.Load().RequestAsync(kind, identity, msg, timeout, then)
}

type seatHarness struct {
	t        *testing.T
	seatJ    *actortest.MemJournal
	walletJ  *actortest.MemJournal
	catalog  *seatTestCatalog
	cfg      SeatConfig
	router   *seatLateRouter
	local    *cluster.Local
	started  atomic.Int64 // seat actor incarnations
	stopped  atomic.Int64
	holdsIn  atomic.Int64 // HoldSeat messages the seat actors have handled
	debits   atomic.Int64 // DebitPayment messages the wallets received
	gate     atomic.Pointer[chan struct{}]
	gated    atomic.Int64 // debits waiting at the gate
	stopOnce func()
	// walletLimit is the wallets' cross-date hold limit (0: 100).
	walletLimit int
	// releaseGate, while set, holds the wallets' slot releases.
	releaseGate atomic.Pointer[chan struct{}]
}

func seatQuietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newSlotHarness is newSeatHarness for the hold-slot tests: each user may
// hold one seat, and the wallets journal apart from the seats (a fault
// injected into the seat journal leaves them alone).
func newSlotHarness(t *testing.T, cfg SeatConfig) *seatHarness {
	t.Helper()
	h := newSeatHarness(t, cfg)
	h.walletLimit = 1
	h.walletJ = actortest.NewMemJournal()
	return h
}

// newSeatHarness starts seat and wallet actors; cfg's zero fields get test
// values (journals and catalog are the harness's).
func newSeatHarness(t *testing.T, cfg SeatConfig) *seatHarness {
	t.Helper()
	h := &seatHarness{t: t, seatJ: actortest.NewMemJournal(), catalog: newSeatTestCatalog(), router: &seatLateRouter{}}
	h.walletJ = h.seatJ
	if cfg.HoldTTL == 0 {
		cfg.HoldTTL = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = seatQuietLogger()
	}
	h.cfg = cfg
	return h
}

// start spawns a fresh actor system on the harness's journals: every actor
// is a new incarnation that recovers from them.
func (h *seatHarness) start() *seatHarness {
	h.t.Helper()
	if h.stopOnce != nil {
		h.stopOnce()
	}
	cfg := h.cfg
	cfg.Journal, cfg.Catalog, cfg.Router = h.seatJ, h.catalog, h.router
	seats := NewSeatProducer(cfg)
	walletLimit := h.walletLimit
	if walletLimit == 0 {
		walletLimit = 100
	}
	wallets := NewWalletProducer(WalletConfig{Journal: h.walletJ, HoldLimit: walletLimit, IdleTTL: -1, Now: cfg.Now, Logger: cfg.Logger})
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return seatQuietLogger() }))
	h.local = cluster.NewLocal(system, map[string]cluster.Producer{
		"seat": func(identity string) actor.Actor {
			return &seatProbe{inner: seats(identity).(*seatActor), h: h}
		},
		"wallet": func(identity string) actor.Actor {
			return &seatGatedWallet{inner: wallets(identity), h: h}
		},
	})
	h.router.r.Store(h.local)
	var once sync.Once
	local := h.local
	h.stopOnce = func() { once.Do(func() { local.Stop(); system.Shutdown() }) }
	h.t.Cleanup(h.stopOnce)
	return h
}

// seatProbe counts incarnations and the holds handled, and answers,
// reading on the actor's goroutine, an emptypb.Empty with the state
// snapshot and an Int64Value with the number of callers waiting for that
// reservation's payment.
type seatProbe struct {
	inner *seatActor
	h     *seatHarness
}

func (p *seatProbe) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		p.h.started.Add(1)
	case *actor.Stopped:
		p.h.stopped.Add(1)
	case *emptypb.Empty:
		ctx.Respond(p.inner.state.Snapshot())
		return
	case *wrapperspb.Int64Value:
		n := 0
		if pay := p.inner.payments[msg.Value]; pay != nil {
			n = len(pay.waiters)
		}
		ctx.Respond(wrapperspb.Int64(int64(n)))
		return
	case *messages.HoldSeat:
		defer p.h.holdsIn.Add(1)
	}
	p.inner.Receive(ctx)
}

// seatGatedWallet is the real wallet, except that a debit waits while the
// harness's gate is closed.
type seatGatedWallet struct {
	inner actor.Actor
	h     *seatHarness
}

func (w *seatGatedWallet) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*messages.ReleaseHoldSlot); ok {
		if g := w.h.releaseGate.Load(); g != nil {
			<-*g
		}
	}
	if _, ok := ctx.Message().(*messages.DebitPayment); ok {
		w.h.debits.Add(1)
		if g := w.h.gate.Load(); g != nil {
			w.h.gated.Add(1)
			<-*g
			w.h.gated.Add(-1)
		}
	}
	w.inner.Receive(ctx)
}

// closeGate makes debits wait; the returned function lets them through.
func (h *seatHarness) closeGate() (open func()) {
	g := make(chan struct{})
	h.gate.Store(&g)
	var once sync.Once
	open = func() { once.Do(func() { h.gate.Store(nil); close(g) }) }
	h.t.Cleanup(open)
	return open
}

func (h *seatHarness) request(kind string, identity int64, msg proto.Message) (proto.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return h.local.Request(ctx, kind, strconv.FormatInt(identity, 10), msg)
}

func (h *seatHarness) reservation(msg proto.Message) (*messages.Reservation, error) {
	h.t.Helper()
	option := stOption
	switch m := msg.(type) {
	case *messages.GetReservation:
		option = OptionOfReservation(m.ReservationId)
	case *messages.CancelReservation:
		option = OptionOfReservation(m.ReservationId)
	case *messages.PayReservation:
		option = OptionOfReservation(m.ReservationId)
	}
	res, err := h.request("seat", option, msg)
	if err != nil {
		return nil, err
	}
	r, ok := res.(*messages.ReservationResult)
	if !ok || r.GetReservation() == nil {
		h.t.Fatalf("reply %v, want a reservation", res)
	}
	return r.GetReservation(), nil
}

func (h *seatHarness) hold(user int64, seatNo int) (*messages.Reservation, error) {
	return h.reservation(&messages.HoldSeat{UserId: user, SeatId: stSeatID(seatNo)})
}

func (h *seatHarness) get(id int64) (*messages.Reservation, error) {
	return h.reservation(&messages.GetReservation{ReservationId: id})
}

func (h *seatHarness) mustGet(id int64) *messages.Reservation {
	h.t.Helper()
	r, err := h.get(id)
	if err != nil {
		h.t.Fatalf("get %d: %v", id, err)
	}
	return r
}

func (h *seatHarness) cancel(id, user int64) (*messages.Reservation, error) {
	return h.reservation(&messages.CancelReservation{ReservationId: id, UserId: user})
}

func (h *seatHarness) pay(id, user, amount int64, key string) (*messages.Reservation, error) {
	return h.reservation(&messages.PayReservation{ReservationId: id, UserId: user, Amount: amount, IdempotencyKey: key})
}

func (h *seatHarness) free(option int64) []int64 {
	h.t.Helper()
	res, err := h.request("seat", option, &messages.GetAvailability{})
	if err != nil {
		h.t.Fatalf("availability: %v", err)
	}
	return res.(*messages.SeatAvailability).GetFreeSeatIds()
}

func (h *seatHarness) isFree(seatNo int) bool {
	for _, id := range h.free(stOption) {
		if id == stSeatID(seatNo) {
			return true
		}
	}
	return false
}

func (h *seatHarness) charge(user, amount int64) {
	h.t.Helper()
	if _, err := h.request("wallet", user, &messages.ChargePoints{UserId: user, Amount: amount}); err != nil {
		h.t.Fatalf("charge: %v", err)
	}
}

func (h *seatHarness) balance(user int64) int64 {
	h.t.Helper()
	res, err := h.request("wallet", user, &messages.GetBalance{UserId: user})
	if err != nil {
		h.t.Fatalf("balance: %v", err)
	}
	return res.(*messages.WalletResult).GetBalance()
}

// state is the live seat actor's state snapshot.
func (h *seatHarness) state(option int64) *messages.SeatSnapshot {
	h.t.Helper()
	res, err := h.request("seat", option, &emptypb.Empty{})
	if err != nil {
		h.t.Fatalf("probe: %v", err)
	}
	return res.(*messages.SeatSnapshot)
}

// waiters is the number of callers waiting for a payment's outcome.
func (h *seatHarness) waiters(id int64) int64 {
	h.t.Helper()
	res, err := h.request("seat", OptionOfReservation(id), wrapperspb.Int64(id))
	if err != nil {
		h.t.Fatalf("probe: %v", err)
	}
	return res.(*wrapperspb.Int64Value).Value
}

// journaledEvents decodes an actor's events as written.
func journaledEvents(t *testing.T, j *actortest.MemJournal, actorID string) []proto.Message {
	t.Helper()
	var out []proto.Message
	for _, e := range j.Events(actorID) {
		m, err := decode(e.Type, e.Payload)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// countEvents counts the events of type T in the actor's journal.
func countEvents[T proto.Message](t *testing.T, j *actortest.MemJournal, actorID string) int {
	t.Helper()
	n := 0
	for _, m := range journaledEvents(t, j, actorID) {
		if _, ok := m.(T); ok {
			n++
		}
	}
	return n
}

// replaySeat rebuilds a seat actor's state from the journal alone.
func replaySeat(t *testing.T, j interface {
	Replay(ctx context.Context, actorID string, afterSeq int64, fn func(persistence.Event) error) error
}, option int64) *seatState {
	t.Helper()
	s := newSeatState(option)
	err := j.Replay(context.Background(), seatJournalPrefix+strconv.FormatInt(option, 10), 0, func(e persistence.Event) error {
		m, err := decode(e.Type, e.Payload)
		if err != nil {
			return err
		}
		s.Apply(m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func seatCode(err error) string {
	var rej *messages.Rejection
	if errors.As(err, &rej) {
		return rej.GetCode()
	}
	if err != nil {
		return "error: " + err.Error()
	}
	return ""
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := seatCode(err); got != code {
		t.Fatalf("got %q, want %q", got, code)
	}
}

const seatActorID = "seat/7"

// ---- holds ----

func TestSeatHoldGetAvailability(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{HoldTTL: time.Minute}).start()
	before := time.Now().UnixMilli()
	r, err := h.hold(1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if r.Id != stRid(1) || r.UserId != 1 || r.SeatId != stSeatID(3) || r.ConcertId != stConcert ||
		r.ConcertOptionId != stOption || r.Price != stPrice || r.Status != messages.ReservationStatus_RESERVATION_HELD ||
		r.CreatedAtMs < before || r.UpdateAtMs != r.CreatedAtMs || r.ExpiresAtMs != r.CreatedAtMs+time.Minute.Milliseconds() {
		t.Fatalf("reservation %v", r)
	}
	if got := h.mustGet(r.Id); !proto.Equal(got, r) {
		t.Fatalf("get %v, want %v", got, r)
	}
	free := h.free(stOption)
	if len(free) != 49 || free[0] != stSeatID(1) || free[1] != stSeatID(2) || free[2] != stSeatID(4) {
		t.Fatalf("free seats %v", free)
	}
	_, err = h.hold(2, 3)
	wantCode(t, err, messages.CodeSeatUnavailable)
	_, err = h.reservation(&messages.HoldSeat{UserId: 1, SeatId: 99999})
	wantCode(t, err, messages.CodeSeatNotFound)
	_, err = h.get(stRid(2))
	wantCode(t, err, messages.CodeReservationNotFound)

	// An unknown date: nothing to hold, nothing to find, nothing free.
	_, err = h.reservation(&messages.HoldSeat{UserId: 1, SeatId: stSeatID(1) + 1000})
	wantCode(t, err, messages.CodeSeatNotFound) // a seat of another date
	_, err = h.request("seat", 12345, &messages.HoldSeat{UserId: 1, SeatId: 12345001})
	wantCode(t, err, messages.CodeSeatNotFound)
	_, err = h.request("seat", 12345, &messages.GetReservation{ReservationId: ReservationID(12345, 1)})
	wantCode(t, err, messages.CodeReservationNotFound)
	if free := h.free(12345); len(free) != 0 {
		t.Fatalf("unknown option has free seats %v", free)
	}
}

func TestSeatHoldRaceOneWinner(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{}).start()
	h.seatJ.Delay(time.Millisecond) // let writes overlap with new commands
	const n = 1000
	start := make(chan struct{})
	var wg sync.WaitGroup
	var won atomic.Int64
	codes := sync.Map{}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := h.hold(int64(i+1), 5)
			if err == nil {
				won.Add(1)
				return
			}
			codes.Store(seatCode(err), true)
		}()
	}
	close(start)
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d holds won seat 5, want exactly 1", won.Load())
	}
	codes.Range(func(k, _ any) bool {
		if k != messages.CodeSeatUnavailable {
			t.Errorf("loser got %v", k)
		}
		return true
	})
	if got := countEvents[*messages.SeatHeld](t, h.seatJ, seatActorID); got != 1 {
		t.Fatalf("%d SeatHeld journaled, want 1", got)
	}
}

func TestSeatHoldManyOneDate(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{HoldLimit: 4}).start()
	const n = 10000
	start := make(chan struct{})
	var wg sync.WaitGroup
	var won atomic.Int64
	var mu sync.Mutex
	seatOf := map[int64]int64{} // seat → reservation
	sem := make(chan struct{}, 200)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			sem <- struct{}{}
			defer func() { <-sem }()
			r, err := h.hold(int64(i%2000+1), i%50+1)
			if err != nil {
				if c := seatCode(err); c != messages.CodeSeatUnavailable && c != messages.CodeHoldLimit {
					t.Errorf("hold: %v", err)
				}
				return
			}
			won.Add(1)
			mu.Lock()
			defer mu.Unlock()
			if prev, dup := seatOf[r.SeatId]; dup {
				t.Errorf("seat %d held by %d and %d", r.SeatId, prev, r.Id)
			}
			seatOf[r.SeatId] = r.Id
		}()
	}
	close(start)
	wg.Wait()
	if won.Load() != 50 || len(seatOf) != 50 {
		t.Fatalf("%d holds succeeded on %d seats, want 50", won.Load(), len(seatOf))
	}
	if free := h.free(stOption); len(free) != 0 {
		t.Fatalf("free seats left: %v", free)
	}
}

func TestSeatHoldLimitAndCancel(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{HoldLimit: 2}).start()
	r1, err := h.hold(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.hold(1, 2); err != nil {
		t.Fatal(err)
	}
	_, err = h.hold(1, 3)
	wantCode(t, err, messages.CodeHoldLimit)
	if _, err := h.hold(2, 3); err != nil {
		t.Fatalf("another user is not limited: %v", err)
	}

	_, err = h.cancel(r1.Id, 2)
	wantCode(t, err, messages.CodeTokenUserMismatch)
	_, err = h.cancel(stRid(99), 1)
	wantCode(t, err, messages.CodeReservationNotFound)
	c, err := h.cancel(r1.Id, 1)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != messages.ReservationStatus_RESERVATION_CANCELLED || c.UpdateAtMs < r1.UpdateAtMs {
		t.Fatalf("cancelled %v", c)
	}
	again, err := h.cancel(r1.Id, 1)
	if err != nil || !proto.Equal(again, c) {
		t.Fatalf("cancel again: %v %v, want %v", again, err, c)
	}
	if !h.isFree(1) {
		t.Fatal("seat 1 not free after cancel")
	}
	_, err = h.pay(r1.Id, 1, stPrice, "k")
	wantCode(t, err, messages.CodeReservationCancelled)
	if _, err := h.hold(1, 4); err != nil {
		t.Fatalf("the cancel freed a hold slot: %v", err)
	}
	if got := h.mustGet(r1.Id); got.Status != messages.ReservationStatus_RESERVATION_CANCELLED {
		t.Fatalf("get after cancel %v", got)
	}
}

// TestSeatCancelReleasesWalletSlot: the seat actor tells the wallet, which
// then lets the user take another hold slot.
func TestSeatCancelReleasesWalletSlot(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{})
	h.start()
	r, err := h.hold(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).UnixMilli()
	for i := range 100 { // fill the wallet's 100 slots, the first for r
		id := r.Id
		if i > 0 {
			id = ReservationID(99, int64(i))
		}
		if _, err := h.request("wallet", 1, &messages.TakeHoldSlot{UserId: 1, ReservationId: id, ExpiresAtMs: exp}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = h.request("wallet", 1, &messages.TakeHoldSlot{UserId: 1, ReservationId: ReservationID(99, 500), ExpiresAtMs: exp})
	wantCode(t, err, messages.CodeHoldLimit)
	if _, err := h.cancel(r.Id, 1); err != nil {
		t.Fatal(err)
	}
	actortest.Eventually(t, 5*time.Second, func() bool {
		_, err := h.request("wallet", 1, &messages.TakeHoldSlot{UserId: 1, ReservationId: ReservationID(99, 500), ExpiresAtMs: exp})
		return err == nil
	}, "the wallet slot to be released")
}

// TestSeatHoldExpiresByTimer: no request arrives, yet the hold expires and
// the actor, with nothing live, passivates.
func TestSeatHoldExpiresByTimer(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{HoldTTL: 400 * time.Millisecond, IdleTTL: 20 * time.Millisecond}).start()
	r, err := h.hold(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	// While the hold is live the actor must not passivate (its timer would
	// be lost), though it idles far longer than IdleTTL.
	actortest.Eventually(t, 5*time.Second, func() bool { return time.Now().UnixMilli() >= r.CreatedAtMs+200 }, "idle time")
	// A busy machine may have let the deadline pass: then the hold expired
	// (journaled) before the actor could passivate. Read whether it stopped
	// first and the journal after, so that an expiry and a passivation
	// both landing between the two reads cannot pass for a passivation
	// with a live hold.
	stopped := h.stopped.Load() != 0
	expired := countEvents[*messages.HoldExpired](t, h.seatJ, seatActorID) != 0
	if stopped && !expired {
		t.Fatal("passivated with a live hold")
	}
	if expired && time.Now().UnixMilli() < r.ExpiresAtMs {
		t.Fatal("expired early")
	}
	actortest.Eventually(t, 5*time.Second, func() bool {
		return countEvents[*messages.HoldExpired](t, h.seatJ, seatActorID) == 1
	}, "the timer to expire the hold")
	actortest.Eventually(t, 5*time.Second, func() bool { return h.stopped.Load() == 1 }, "passivation once idle")
	got := h.mustGet(r.Id) // a new incarnation
	if got.Status != messages.ReservationStatus_RESERVATION_EXPIRED || got.UpdateAtMs < r.ExpiresAtMs {
		t.Fatalf("after expiry %v", got)
	}
	if h.started.Load() != 2 {
		t.Fatalf("%d incarnations, want 2", h.started.Load())
	}
	if !h.isFree(1) {
		t.Fatal("seat not free after expiry")
	}
	_, err = h.pay(r.Id, 1, stPrice, "k")
	wantCode(t, err, messages.CodeHoldExpired)
	_, err = h.cancel(r.Id, 1)
	wantCode(t, err, messages.CodeHoldExpired)
}

// TestSeatExpiredHoldCountsAsFree: a hold past its expiry whose timer has not
// run is expired first by any command.
func TestSeatExpiredHoldCountsAsFree(t *testing.T) {
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	h := newSeatHarness(t, SeatConfig{HoldTTL: time.Hour, HoldLimit: 1, Now: now}).start()
	r, err := h.hold(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	offset.Store(int64(2 * time.Hour)) // the clock jumps; the real timer is an hour away
	r2, err := h.hold(1, 1)            // same user, same seat: limit 1 would refuse a live hold
	if err != nil {
		t.Fatalf("hold after expiry: %v", err)
	}
	if got := h.mustGet(r.Id); got.Status != messages.ReservationStatus_RESERVATION_EXPIRED {
		t.Fatalf("first hold %v", got)
	}
	if r2.Id != stRid(2) {
		t.Fatalf("second reservation id %d", r2.Id)
	}
}

// ---- payments ----

func TestSeatPaySuccessAndIdempotentRetry(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{}).start()
	h.charge(1, 2500)
	r, err := h.hold(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.pay(r.Id, 2, stPrice, "k")
	wantCode(t, err, messages.CodeTokenUserMismatch)
	_, err = h.pay(r.Id, 1, stPrice+1, "k")
	wantCode(t, err, messages.CodeAmountMismatch)
	_, err = h.pay(stRid(9), 1, stPrice, "k")
	wantCode(t, err, messages.CodeReservationNotFound)

	paid, err := h.pay(r.Id, 1, stPrice, "k")
	if err != nil {
		t.Fatal(err)
	}
	if paid.Status != messages.ReservationStatus_RESERVATION_CONFIRMED || paid.PaidAmount != stPrice ||
		paid.BalanceAfter != 1500 || paid.PaidAtMs == 0 || paid.Paying || paid.IdempotencyKey != "k" || paid.ConcertId != stConcert {
		t.Fatalf("paid %v", paid)
	}
	again, err := h.pay(r.Id, 1, stPrice, "k")
	if err != nil || !proto.Equal(again, paid) {
		t.Fatalf("same-key retry: %v %v, want %v", again, err, paid)
	}
	_, err = h.pay(r.Id, 1, stPrice, "other")
	wantCode(t, err, messages.CodeAlreadyPaid)
	_, err = h.pay(r.Id, 1, stPrice, "")
	wantCode(t, err, messages.CodeAlreadyPaid)
	_, err = h.cancel(r.Id, 1)
	wantCode(t, err, messages.CodeAlreadyPaid)
	if b := h.balance(1); b != 1500 {
		t.Fatalf("balance %d, want 1500", b)
	}
	if h.isFree(1) {
		t.Fatal("a sold seat is free")
	}
	_, err = h.hold(2, 1)
	wantCode(t, err, messages.CodeSeatUnavailable)
	if got := countEvents[*messages.PaymentDebited](t, h.walletJ, "wallet/1"); got != 1 {
		t.Fatalf("%d debits journaled, want 1", got)
	}
}

func TestSeatPayInsufficientBalance(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{}).start()
	h.charge(1, stPrice-1)
	r, _ := h.hold(1, 1)
	_, err := h.pay(r.Id, 1, stPrice, "k")
	wantCode(t, err, messages.CodeInsufficientBalance)
	got := h.mustGet(r.Id)
	if got.Status != messages.ReservationStatus_RESERVATION_HELD || got.Paying {
		t.Fatalf("after abort %v", got)
	}
	if h.balance(1) != stPrice-1 {
		t.Fatal("balance changed")
	}
	// Charged, the same key now pays: the wallet never recorded it.
	h.charge(1, 1)
	paid, err := h.pay(r.Id, 1, stPrice, "k")
	if err != nil || paid.Status != messages.ReservationStatus_RESERVATION_CONFIRMED || paid.BalanceAfter != 0 {
		t.Fatalf("pay after charge: %v %v", paid, err)
	}
}

func TestSeatPayJoinsWaitersAndLocksTheHold(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{}).start()
	h.charge(1, stPrice)
	r, _ := h.hold(1, 1)
	open := h.closeGate()
	type outcome struct {
		r   *messages.Reservation
		err error
	}
	results := make(chan outcome, 2)
	for range 2 {
		go func() {
			res, err := h.pay(r.Id, 1, stPrice, "k")
			results <- outcome{res, err}
		}()
	}
	actortest.Eventually(t, 5*time.Second, func() bool { return h.gated.Load() == 1 }, "the debit at the wallet")
	locked := h.mustGet(r.Id)
	if !locked.Paying || locked.Status != messages.ReservationStatus_RESERVATION_HELD {
		t.Fatalf("while paying %v", locked)
	}
	_, err := h.pay(r.Id, 1, stPrice, "other")
	wantCode(t, err, messages.CodePaymentInProgress)
	_, err = h.cancel(r.Id, 1)
	wantCode(t, err, messages.CodePaymentInProgress)
	// Both same-key callers wait for the one debit.
	actortest.Eventually(t, 5*time.Second, func() bool { return h.waiters(r.Id) == 2 }, "two waiters")
	open()
	for range 2 {
		o := <-results
		if o.err != nil || o.r.Status != messages.ReservationStatus_RESERVATION_CONFIRMED {
			t.Fatalf("waiter got %v %v", o.r, o.err)
		}
	}
	if h.debits.Load() != 1 {
		t.Fatalf("%d debits, want 1", h.debits.Load())
	}
}

// TestSeatHoldExpiresDuringPayment: the hold's time runs out while the
// debit is at the wallet: it stays locked, and expires once the wallet
// refuses.
func TestSeatHoldExpiresDuringPayment(t *testing.T) {
	// The actors' clock stands still until the debit is at the wallet: on
	// the real clock a busy machine could let the hold run out before the
	// payment even reached the seat actor (HOLD_EXPIRED, no debit).
	const ttl = 100 * time.Millisecond
	clock := &fakeClock{now: time.Now()}
	h := newSeatHarness(t, SeatConfig{HoldTTL: ttl, Now: clock.Now}).start()
	h.charge(1, stPrice-1)
	r, err := h.hold(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	open := h.closeGate()
	done := make(chan error, 1)
	go func() {
		_, err := h.pay(r.Id, 1, stPrice, "k")
		done <- err
	}()
	actortest.Eventually(t, 5*time.Second, func() bool { return h.gated.Load() == 1 }, "the debit at the wallet")
	clock.advance(time.Second) // past the hold's expiry
	// The expiry timer (re-armed every ttl while the clock stood still)
	// runs past the deadline meanwhile; had it not yet, the reads below
	// expire due holds first all the same.
	advanced := time.Now()
	actortest.Eventually(t, 5*time.Second, func() bool { return time.Since(advanced) > 2*ttl }, "the expiry timer to run")
	got := h.mustGet(r.Id)
	if got.Status != messages.ReservationStatus_RESERVATION_HELD || !got.Paying {
		t.Fatalf("expired while paying: %v", got)
	}
	if h.isFree(1) {
		t.Fatal("seat free while paying")
	}
	open()
	wantCode(t, <-done, messages.CodeInsufficientBalance)
	got = h.mustGet(r.Id)
	if got.Status != messages.ReservationStatus_RESERVATION_EXPIRED || got.Paying {
		t.Fatalf("after abort past expiry %v", got)
	}
	if !h.isFree(1) {
		t.Fatal("seat not free after expiry")
	}
}

// TestSeatPayWalletUnavailable: an unknown debit outcome answers
// STORE_UNAVAILABLE but keeps the payment going until the wallet answers.
func TestSeatPayWalletUnavailable(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{})
	h.walletJ = actortest.NewMemJournal()
	h.start()
	h.charge(1, 5000)
	r, _ := h.hold(1, 1)
	h.walletJ.SetDown(true)
	_, err := h.pay(r.Id, 1, stPrice, "k")
	wantCode(t, err, messages.CodeStoreUnavailable)
	actortest.Eventually(t, 5*time.Second, func() bool { return h.debits.Load() >= 3 }, "debit retries")
	if got := h.mustGet(r.Id); !got.Paying {
		t.Fatalf("payment dropped: %v", got)
	}
	h.walletJ.SetDown(false)
	paid, err := h.pay(r.Id, 1, stPrice, "k") // the client's retry joins the payment
	if err != nil || paid.Status != messages.ReservationStatus_RESERVATION_CONFIRMED {
		t.Fatalf("retry: %v %v", paid, err)
	}
	if b := h.balance(1); b != 4000 {
		t.Fatalf("balance %d, want 4000", b)
	}
}

// ---- durability ----

// TestSeatJournalFailure: a failed write answers STORE_UNAVAILABLE, and the
// next incarnation recovers exactly what is durable.
func TestSeatJournalFailure(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{}).start()
	a, err := h.hold(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	h.seatJ.FailNext(fmt.Errorf("disk on fire: %w", persistence.ErrUnavailable))
	_, err = h.hold(2, 2)
	wantCode(t, err, messages.CodeStoreUnavailable)
	actortest.Eventually(t, 5*time.Second, func() bool { return h.stopped.Load() == 1 }, "the broken actor to leave")
	if got := h.mustGet(a.Id); got.Status != messages.ReservationStatus_RESERVATION_HELD {
		t.Fatalf("durable hold lost: %v", got)
	}
	_, err = h.get(stRid(2))
	wantCode(t, err, messages.CodeReservationNotFound)
	if !h.isFree(2) || h.isFree(1) {
		t.Fatal("seats do not match the journal")
	}
	b, err := h.hold(3, 2)
	if err != nil || b.Id != stRid(2) {
		t.Fatalf("hold after recovery: %v %v", b, err)
	}
	if !proto.Equal(h.state(stOption), replaySeat(t, h.seatJ, stOption).Snapshot()) {
		t.Fatal("live state differs from the journal")
	}
}

// TestSeatJournalFailureDuringPay: PaymentStarted is not durable, so the
// caller hears STORE_UNAVAILABLE at once, no debit is made, and the next
// incarnation has the hold back as it was.
func TestSeatJournalFailureDuringPay(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{}).start()
	h.charge(1, 5000)
	r, _ := h.hold(1, 1)
	h.seatJ.FailNext(fmt.Errorf("disk on fire: %w", persistence.ErrUnavailable))
	began := time.Now()
	_, err := h.pay(r.Id, 1, stPrice, "k")
	wantCode(t, err, messages.CodeStoreUnavailable)
	// Well short of the caller's 10 s timeout, with room for a busy machine.
	if time.Since(began) > 5*time.Second {
		t.Fatalf("answered after %v: the caller waited for a timeout", time.Since(began))
	}
	got := h.mustGet(r.Id) // a new incarnation
	if got.Status != messages.ReservationStatus_RESERVATION_HELD || got.Paying || h.debits.Load() != 0 {
		t.Fatalf("after a failed PaymentStarted: %v, %d debits", got, h.debits.Load())
	}
	if h.started.Load() != 2 {
		t.Fatalf("%d incarnations, want 2", h.started.Load())
	}
	paid, err := h.pay(r.Id, 1, stPrice, "k")
	if err != nil || paid.Status != messages.ReservationStatus_RESERVATION_CONFIRMED {
		t.Fatalf("pay again: %v %v", paid, err)
	}
}

// TestSeatReplayEqualsLive: the state after live handling equals the state
// a new incarnation rebuilds from the journal (snapshot + events).
func TestSeatReplayEqualsLive(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{SnapshotEvery: 4, HoldLimit: 3}).start()
	h.charge(1, 3000)
	h.charge(2, 500)
	for i := range 12 {
		_, _ = h.hold(int64(i%3+1), i%7+1)
	}
	_, _ = h.cancel(stRid(2), 2)
	_, _ = h.pay(stRid(1), 1, stPrice, "a")
	_, _ = h.pay(stRid(3), 3, stPrice, "b") // no money: aborted
	_, _ = h.pay(stRid(4), 1, stPrice, "")
	live := h.state(stOption)
	// Closed reservations leave the snapshot (for the archive); open ones
	// and sold seats stay.
	if n := len(live.GetReservations()) + len(live.GetSoldSeats()); n < 4 {
		t.Fatalf("only %d reservations and sold seats", n)
	}
	if _, ok := h.seatJ.Snapshot(seatActorID); !ok {
		actortest.Eventually(t, 5*time.Second, func() bool { _, ok := h.seatJ.Snapshot(seatActorID); return ok }, "a snapshot")
	}
	h.start() // every actor a new incarnation
	recovered := h.state(stOption)
	if !proto.Equal(live, recovered) {
		t.Fatalf("recovered %v\nwant %v", recovered, live)
	}
	if fromJournal := replaySeat(t, h.seatJ, stOption).Snapshot(); !proto.Equal(live, fromJournal) {
		t.Fatalf("replayed %v\nwant %v", fromJournal, live)
	}
}

// TestSeatSagaRecovery: after a crash with PaymentStarted durable, a new
// incarnation finishes the payment — debiting once whether or not the debit
// had already happened.
func TestSeatSagaRecovery(t *testing.T) {
	for _, debited := range []bool{false, true} {
		t.Run(fmt.Sprintf("debited=%v", debited), func(t *testing.T) {
			h := newSeatHarness(t, SeatConfig{}).start()
			h.charge(1, 5000)
			if debited {
				if _, err := h.request("wallet", 1, &messages.DebitPayment{UserId: 1, ReservationId: stRid(1),
					Amount: stPrice, IdempotencyKey: "k"}); err != nil {
					t.Fatal(err)
				}
			}
			// The crashed incarnation's journal: held, payment started.
			now := time.Now()
			var events []persistence.Event
			for i, m := range []proto.Message{
				&messages.SeatHeld{ReservationId: stRid(1), SeatId: stSeatID(1), UserId: 1, Price: stPrice,
					HeldAtMs: now.UnixMilli(), ExpiresAtMs: now.Add(time.Minute).UnixMilli()},
				&messages.PaymentStarted{ReservationId: stRid(1), Amount: stPrice, IdempotencyKey: "k", AtMs: now.UnixMilli()},
			} {
				typ, payload, err := encode(m)
				if err != nil {
					t.Fatal(err)
				}
				events = append(events, persistence.Event{Seq: int64(i + 1), Type: typ, Payload: payload})
			}
			seatAppend(t, h.seatJ, seatActorID, events)
			// Any message wakes the seat actor; it re-drives the payment itself.
			if free := h.free(stOption); len(free) != 49 {
				t.Fatalf("%d free seats", len(free))
			}
			actortest.Eventually(t, 5*time.Second, func() bool {
				r, err := h.get(stRid(1))
				return err == nil && r.Status == messages.ReservationStatus_RESERVATION_CONFIRMED
			}, "the payment to complete")
			if b := h.balance(1); b != 4000 {
				t.Fatalf("balance %d, want 4000", b)
			}
			paid, err := h.pay(stRid(1), 1, stPrice, "k")
			if err != nil || paid.BalanceAfter != 4000 {
				t.Fatalf("same-key retry %v %v", paid, err)
			}
		})
	}
}

// TestSeatCrashAtEveryStep rebuilds every state a kill -9 can leave a
// payment in (a prefix of the seat's journal with the matching prefix of the
// wallet's: the debit is made only after PaymentStarted is durable, and the
// confirmation only after the debit), starts new incarnations on it, and
// checks the end is fully paid or fully not.
func TestSeatCrashAtEveryStep(t *testing.T) {
	ref := newSeatHarness(t, SeatConfig{}).start()
	ref.charge(1, 5000)
	r, _ := ref.hold(1, 1)
	if _, err := ref.pay(r.Id, 1, stPrice, "k"); err != nil {
		t.Fatal(err)
	}
	seatEvents := ref.seatJ.Events(seatActorID)
	// The wallet's: the charge, the hold's slot, the debit (and, a moment
	// after the payment, the slot's release, which no case below keeps).
	walletEvents := ref.seatJ.Events("wallet/1")
	if len(seatEvents) != 3 || len(walletEvents) < 3 {
		t.Fatalf("reference run journaled %d seat and %d wallet events", len(seatEvents), len(walletEvents))
	}
	for _, tc := range []struct {
		seat, wallet int // journal prefixes that survived
		status       messages.ReservationStatus
		balance      int64
	}{
		{0, 1, messages.ReservationStatus_RESERVATION_STATUS_UNSPECIFIED, 5000}, // before the hold
		{0, 2, messages.ReservationStatus_RESERVATION_STATUS_UNSPECIFIED, 5000}, // slot taken, hold not written
		{1, 1, messages.ReservationStatus_RESERVATION_HELD, 5000},               // hold written, slot not
		{1, 2, messages.ReservationStatus_RESERVATION_HELD, 5000},               // held, pay not started
		{2, 2, messages.ReservationStatus_RESERVATION_CONFIRMED, 4000},          // started, debit not made
		{2, 3, messages.ReservationStatus_RESERVATION_CONFIRMED, 4000},          // debited, not confirmed
		{3, 3, messages.ReservationStatus_RESERVATION_CONFIRMED, 4000},          // confirmed
	} {
		t.Run(fmt.Sprintf("seat%d-wallet%d", tc.seat, tc.wallet), func(t *testing.T) {
			h := newSeatHarness(t, SeatConfig{})
			seatAppend(t, h.seatJ, seatActorID, seatEvents[:tc.seat])
			seatAppend(t, h.seatJ, "wallet/1", walletEvents[:tc.wallet])
			h.start()
			_ = h.free(stOption) // wake the seat actor: it re-drives by itself
			var final *messages.Reservation
			actortest.Eventually(t, 5*time.Second, func() bool {
				got, err := h.get(r.Id)
				final = got
				if tc.seat == 0 {
					return seatCode(err) == messages.CodeReservationNotFound
				}
				return err == nil && !got.Paying
			}, "the saga to settle")
			if final.GetStatus() != tc.status {
				t.Fatalf("status %v, want %v", final.GetStatus(), tc.status)
			}
			if b := h.balance(1); b != tc.balance {
				t.Fatalf("balance %d, want %d", b, tc.balance)
			}
			if got := countEvents[*messages.PaymentDebited](t, h.seatJ, "wallet/1"); got != int(5000-tc.balance)/int(stPrice) {
				t.Fatalf("%d debits", got)
			}
		})
	}
}

func seatAppend(t *testing.T, j *actortest.MemJournal, actorID string, events []persistence.Event) {
	t.Helper()
	if len(events) == 0 {
		return
	}
	appended := make(chan error, 1)
	if err := j.AppendAsync(actorID, events, persistence.ReminderChange{}, func(err error) { appended <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
}
