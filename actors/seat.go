package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/cluster"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// SeatCatalog is what the seat actor reads from the catalog;
// persistence.Catalog implements it.
type SeatCatalog interface {
	// Option returns the concert option, or an error wrapping
	// persistence.ErrNotFound.
	Option(ctx context.Context, optionID int64) (persistence.ConcertOption, error)
	// Seats returns the option's seats.
	Seats(ctx context.Context, optionID int64) ([]persistence.Seat, error)
}

var _ SeatCatalog = (*persistence.Catalog)(nil)

// Seat actor defaults, used where SeatConfig leaves a field zero.
const (
	seatDefaultHoldTTL      = 5 * time.Minute
	seatDefaultDebitTimeout = 5 * time.Second
	seatCatalogTimeout      = 5 * time.Second
	// seatCatalogRetryMax is the longest a seat actor refuses commands
	// without asking the catalog again after a failed load.
	seatCatalogRetryMax = time.Second
	seatJournalPrefix   = "seat/"
	// seatRetryMin and seatRetryMax bound the backoff between debits whose
	// outcome is unknown.
	seatRetryMin = 100 * time.Millisecond
	seatRetryMax = 5 * time.Second
	// seatArchiveTimeout bounds reading a closed reservation from the archive.
	seatArchiveTimeout = 5 * time.Second
)

// SeatConfig configures the seat actors (kind "seat", one per concert
// option, identity = the option id in decimal).
type SeatConfig struct {
	Journal Journal
	Catalog SeatCatalog
	// Router reaches the wallet actors (kind "wallet", identity = user id)
	// for hold slots (taken with each hold), debits and slot releases; nil
	// leaves holds without the cross-date limit and payments impossible.
	Router cluster.Router
	// HoldTTL is how long a hold lasts unpaid (default 5 minutes).
	HoldTTL time.Duration
	// HoldLimit is the most seats a user may hold on one date (≤ 0: no
	// limit here; the wallet enforces the limit across dates).
	HoldLimit int
	// SnapshotEvery is the number of events between snapshots (≤ 0: never).
	SnapshotEvery int
	// IdleTTL passivates a seat actor without live holds or payments after
	// this long without messages (0: never).
	IdleTTL time.Duration
	// DebitTimeout bounds one debit request to the wallet (default 5 s);
	// after it the outcome is unknown and the debit is retried.
	DebitTimeout time.Duration
	// Admission, if set, is shared by all journaled actors of the node (see
	// Admission).
	Admission *Admission
	// SnapshotAdmission, if set, is shared likewise by their snapshots
	// (JournaledOptions.SnapshotAdmission).
	SnapshotAdmission *Admission
	Now               func() time.Time
	Logger            *slog.Logger
}

func (c SeatConfig) withDefaults() SeatConfig {
	if c.HoldTTL <= 0 {
		c.HoldTTL = seatDefaultHoldTTL
	}
	if c.DebitTimeout <= 0 {
		c.DebitTimeout = seatDefaultDebitTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// NewSeatProducer returns the producer of seat actors for cluster.NewLocal
// (kind "seat"). Each seat actor journals under "seat/<optionId>".
//
// A seat actor answers HoldSeat, GetReservation, CancelReservation and
// PayReservation with *messages.ReservationResult carrying the reservation,
// GetAvailability with *messages.SeatAvailability, and every refusal with a
// bare *messages.Rejection — each only once the state it rests on is
// durable.
func NewSeatProducer(cfg SeatConfig) cluster.Producer {
	cfg = cfg.withDefaults()
	return func(identity string) actor.Actor {
		optionID, err := strconv.ParseInt(identity, 10, 64)
		if err != nil || optionID <= 0 {
			optionID = 0 // an unknown option: nothing can be held
		}
		id := seatJournalPrefix + identity
		if optionID > 0 {
			id = seatJournalPrefix + strconv.FormatInt(optionID, 10)
		}
		a := &seatActor{
			cfg:       cfg,
			identity:  identity,
			journalID: id,
			optionID:  optionID,
			state:     newSeatState(optionID),
			payments:  map[int64]*payment{},
			slots:     map[int64]*pendingSlot{},
			releases:  map[*slotRelease]struct{}{},
			log:       cfg.Logger.With("actor", id),
		}
		a.j = NewJournaled(JournaledOptions{
			ID:                id,
			Journal:           cfg.Journal,
			Model:             a.state,
			SnapshotEvery:     cfg.SnapshotEvery,
			IdleTTL:           cfg.IdleTTL,
			CanPassivate:      a.canPassivate,
			Admission:         cfg.Admission,
			SnapshotAdmission: cfg.SnapshotAdmission,
			Logger:            cfg.Logger, // Journaled names the actor in each line
		})
		return a
	}
}

// seatActor owns the seats of one concert option and every reservation on
// it, and coordinates the payment saga of those reservations.
type seatActor struct {
	cfg       SeatConfig
	identity  string
	journalID string
	optionID  int64
	j         *Journaled
	state     *seatState
	cat       *seatCatalog // nil until loaded
	// catalogRetry is the last failed catalog load, while cat is nil.
	catalogRetry catalogRetry
	log          *slog.Logger

	root *actor.RootContext
	self *actor.PID // set when a message is deferred (confirming)

	expiry   *time.Timer               // fires at the earliest hold deadline
	expiryAt int64                     // the deadline expiry is armed for (ms)
	payments map[int64]*payment        // payments in flight by reservation
	slots    map[int64]*pendingSlot    // holds waiting for their wallet slot
	releases map[*slotRelease]struct{} // answers waiting for a slot's release
}

// payment is the coordinator's memory of one payment in flight; the durable
// part is the PaymentStarted event.
type payment struct {
	waiters  []*actor.PID // callers to answer with the outcome
	attempt  int          // number of the latest debit request
	inFlight bool         // a debit request is out
	backoff  time.Duration
	retry    *time.Timer
}

// debitOutcome is the wallet's answer to one debit request.
type debitOutcome struct {
	id      int64
	attempt int
	reply   proto.Message
	err     error
}

// Receive implements actor.Actor.
func (a *seatActor) Receive(ctx actor.Context) {
	defer a.j.Guard(ctx)
	if _, ok := ctx.Message().(*actor.Started); ok {
		a.root = ctx.ActorSystem().Root
	}
	if a.j.Intercept(ctx) {
		return
	}
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		a.started()
	case *actor.Stopped:
		a.stopped()
	case *messages.HoldSeat:
		a.hold(ctx, msg)
	case *messages.GetReservation:
		a.get(ctx, msg)
	case *messages.CancelReservation:
		a.cancel(ctx, msg)
	case *messages.PayReservation:
		a.pay(ctx, msg)
	case *messages.GetAvailability:
		a.availability(ctx)
	case actor.SystemMessage, actor.AutoReceiveMessage:
	default:
		if ctx.Sender() != nil {
			a.j.Reply(ctx, messages.Reject(messages.CodeInvalidRequest, "seat actor cannot handle %T", msg))
		}
	}
}

// started runs after recovery: it loads the catalog, arms the expiry timer
// and re-drives every payment that was in flight.
func (a *seatActor) started() {
	if err := a.ensureCatalog(); err != nil {
		a.log.Warn("catalog not loaded; retrying at a command after a backoff", "err", err)
	}
	a.expire(dueExpiries(a.state, a.cfg.Now()))
	a.arm()
	for _, id := range a.state.sortedIDs(a.state.paying) {
		a.payments[id] = &payment{}
		a.log.Info("re-driving a payment in flight", "reservation", id)
		a.debit(id)
	}
	a.reconfirmSlots()
}

// stopped cancels the timers and tells the callers waiting for a payment
// that its outcome is unknown. Work left open (a broken actor's holds and
// payments) is resumed by the next incarnation, which the node's reminder
// service activates without waiting for a request.
func (a *seatActor) stopped() {
	if a.expiry != nil {
		a.expiry.Stop()
	}
	a.abandonSlots()
	a.abandonReleases()
	// Callers still waiting for a payment learn that its outcome is
	// unknown; the next incarnation finishes the payment.
	rej := messages.Reject(messages.CodeStoreUnavailable,
		"seat/%d stopped during a payment; retry with the same idempotency key", a.optionID)
	for _, p := range a.payments {
		if p.retry != nil {
			p.retry.Stop()
		}
		for _, w := range p.waiters {
			a.root.Send(w, rej)
		}
		p.waiters = nil
	}
}

func (a *seatActor) canPassivate() bool {
	return len(a.state.live) == 0 && len(a.payments) == 0 && len(a.slots) == 0 && len(a.releases) == 0
}

// catalogRetry is a seat actor's memory of a failed catalog load: until
// at, commands are refused with err at once rather than each waiting up to
// seatCatalogTimeout for a store that just failed (with the actor's other
// messages queued behind it).
type catalogRetry struct {
	err     error
	at      time.Time
	backoff time.Duration
}

// ensureCatalog loads the option and its seats once per incarnation; after
// a failure, not again before the backoff ends: 100 ms doubling to 1 s,
// counted from the failure on the wall clock (the store's time, not the
// domain clock cfg.Now). Capped at 1 s so that a seat actor serves again
// within a second of the store's return.
func (a *seatActor) ensureCatalog() error {
	if a.cat != nil {
		return nil
	}
	if a.optionID <= 0 || a.cfg.Catalog == nil {
		a.cat = &seatCatalog{}
		return nil
	}
	start := time.Now()
	if r := &a.catalogRetry; r.err != nil && start.Before(r.at) {
		return r.err
	}
	err := a.loadCatalog()
	if err != nil {
		r, end := &a.catalogRetry, time.Now()
		r.backoff = min(max(2*r.backoff, seatRetryMin), seatCatalogRetryMax)
		// From the failure, not the ask: a load that failed after its
		// 5 s timeout had used up a 1 s backoff before it ended.
		r.err, r.at = err, end.Add(r.backoff)
		return err
	}
	a.catalogRetry = catalogRetry{}
	return nil
}

// loadCatalog reads the option and its seats (an option the catalog does
// not know has none).
func (a *seatActor) loadCatalog() error {
	ctx, cancel := context.WithTimeout(context.Background(), seatCatalogTimeout)
	defer cancel()
	opt, err := a.cfg.Catalog.Option(ctx, a.optionID)
	if errors.Is(err, persistence.ErrNotFound) {
		a.cat = &seatCatalog{}
		return nil
	}
	if err != nil {
		return fmt.Errorf("seat/%d load option: %w", a.optionID, err)
	}
	seats, err := a.cfg.Catalog.Seats(ctx, a.optionID)
	if err != nil {
		return fmt.Errorf("seat/%d load seats: %w", a.optionID, err)
	}
	a.cat = newSeatCatalog(opt, seats)
	return nil
}

// ready loads the catalog if needed and expires the holds that ran out; on
// a catalog failure it answers STORE_UNAVAILABLE and returns false.
func (a *seatActor) ready(ctx actor.Context, now time.Time) bool {
	if err := a.ensureCatalog(); err != nil {
		a.j.Reply(ctx, messages.Reject(messages.CodeStoreUnavailable, "%v", err))
		return false
	}
	// Expiries the journal would refuse now are left to the expiry timer,
	// which retries: collected and refused at every command, they cost
	// O(due holds) and a warning per message while the node is overloaded.
	if !a.j.Refusing() {
		a.expire(dueExpiries(a.state, now))
	}
	return true
}

// persist persists events and, if they cannot be stored, answers the
// current caller with the refusal; it reports whether they were applied.
func (a *seatActor) persist(ctx actor.Context, events ...proto.Message) bool {
	if rej := a.j.Persist(events...); rej != nil {
		a.j.Refuse(ctx, rej)
		return false
	}
	return true
}

func (a *seatActor) hold(ctx actor.Context, c *messages.HoldSeat) {
	now := a.cfg.Now()
	if !a.ready(ctx, now) {
		return
	}
	if a.j.Refusing() && a.state.anyDue(now) {
		// Holds ran out that the journal cannot expire now (ready left them
		// to the timer): decided on them, this hold could be refused a seat
		// or the limit by a hold that is over. Refused for load instead.
		a.j.Refuse(ctx, overloaded(a.journalID))
		return
	}
	if a.behindPendingHold(ctx, c.GetSeatId()) {
		return // decided once the seat's tentative hold is
	}
	ev, rej := decideHold(a.state, a.cat, c, now, a.cfg.HoldTTL, a.cfg.HoldLimit)
	if rej != nil {
		a.j.Reply(ctx, rej)
		return
	}
	if !a.persist(ctx, ev) {
		return
	}
	a.arm()
	r := a.state.reservations[ev.ReservationId]
	if a.cfg.Router == nil {
		a.j.Reply(ctx, a.result(r)) // no wallets: no cross-date limit
		return
	}
	a.takeSlot(r, ctx.Sender())
}

func (a *seatActor) get(ctx actor.Context, c *messages.GetReservation) {
	if !a.ready(ctx, a.cfg.Now()) {
		return
	}
	if a.confirming(ctx, c.GetReservationId()) {
		return // served once the wallet answered for the hold's slot
	}
	r := a.state.reservations[c.GetReservationId()]
	if r == nil {
		a.fromArchive(ctx, c.GetReservationId(), func(r *messages.Reservation) proto.Message { return a.result(r) })
		return
	}
	a.j.Reply(ctx, a.result(r))
}

func (a *seatActor) cancel(ctx actor.Context, c *messages.CancelReservation) {
	now := a.cfg.Now()
	if !a.ready(ctx, now) {
		return
	}
	if a.state.reservations[c.GetReservationId()] == nil {
		a.fromArchive(ctx, c.GetReservationId(), func(r *messages.Reservation) proto.Message {
			return a.decideClosed(r, func(s *seatState) (proto.Message, *messages.Rejection) { return decideCancel(s, c, now) })
		})
		return
	}
	if a.confirming(ctx, c.GetReservationId()) {
		return
	}
	ev, rej := decideCancel(a.state, c, now)
	if rej != nil {
		a.j.Reply(ctx, rej)
		return
	}
	r := a.state.reservations[c.GetReservationId()]
	if ev != nil {
		if !a.persist(ctx, ev) {
			return
		}
		a.releaseThenAnswer(r, []*actor.PID{ctx.Sender()}, a.result(r))
		return
	}
	a.j.Reply(ctx, a.result(r))
}

// fromArchive answers a command about a reservation that is no longer in
// the state: closed and archived by a snapshot, or never made. The archive
// is read on another goroutine, so the actor goes on serving; a closed
// reservation never changes, so the answer needs no ordering with later
// commands. answer turns the archived reservation into the reply.
func (a *seatActor) fromArchive(ctx actor.Context, id int64, answer func(*messages.Reservation) proto.Message) {
	sender := ctx.Sender()
	if !a.state.existed(id) || sender == nil {
		a.j.Reply(ctx, rejectNoReservation(id))
		return
	}
	journal, journalID, root, log := a.cfg.Journal, a.journalID, a.root, a.log
	go func() {
		rctx, cancel := context.WithTimeout(context.Background(), seatArchiveTimeout)
		defer cancel()
		var reply proto.Message
		rec, ok, err := journal.LoadArchived(rctx, journalID, id)
		switch {
		case err != nil:
			log.Warn("archive read failed", "reservation", id, "err", err)
			reply = messages.Reject(messages.CodeStoreUnavailable, "reservation %d cannot be read now; retry shortly", id)
		case !ok:
			reply = rejectNoReservation(id)
		default:
			m, err := decode(rec.Type, rec.Payload)
			r, isRes := m.(*messages.Reservation)
			if err != nil || !isRes {
				log.Error("archived reservation unreadable", "reservation", id, "err", err)
				reply = messages.Reject(messages.CodeStoreUnavailable, "reservation %d cannot be read now", id)
			} else {
				reply = answer(r)
			}
		}
		root.Send(sender, reply)
	}()
}

// decideClosed runs a decision on a closed (archived) reservation alone. A
// closed reservation never yields an event; if a decision asked for one, the
// state would be wrong, so it is refused rather than acted on.
func (a *seatActor) decideClosed(r *messages.Reservation, decide func(*seatState) (proto.Message, *messages.Rejection)) proto.Message {
	s := newSeatState(a.optionID)
	s.reservations[r.Id] = r
	s.index(r)
	ev, rej := decide(s)
	switch {
	case rej != nil:
		return rej
	case ev != nil:
		return messages.Reject(messages.CodeStoreUnavailable, "reservation %d is closed but not final; retry", r.Id)
	}
	return a.result(r)
}

func (a *seatActor) availability(ctx actor.Context) {
	if !a.ready(ctx, a.cfg.Now()) {
		return
	}
	a.j.Reply(ctx, &messages.SeatAvailability{FreeSeatIds: a.withTentative(freeSeats(a.state, a.cat))})
}

// expire persists HoldExpired events and releases their wallet slots. If
// they cannot be stored now, the holds stay due and the next command or the
// expiry timer tries again.
func (a *seatActor) expire(events []proto.Message) {
	if len(events) == 0 {
		return
	}
	if rej := a.j.Persist(events...); rej != nil {
		a.log.Warn("hold expiries not stored yet", "count", len(events), "reason", rej.GetMessage())
		return
	}
	for _, e := range events {
		a.releaseSlot(a.state.reservations[e.(*messages.HoldExpired).GetReservationId()])
	}
}

// releaseSlot frees the reservation's hold slot at the wallet once the
// change that ended the hold is durable. Fire and forget: a lost release
// only keeps the slot until the hold's expiry, when it frees itself.
func (a *seatActor) releaseSlot(r *messages.Reservation) {
	if a.cfg.Router == nil || r == nil {
		return
	}
	router, user, id := a.cfg.Router, r.UserId, r.Id
	a.j.AfterDurable(func() {
		router.Send("wallet", strconv.FormatInt(user, 10), &messages.ReleaseHoldSlot{UserId: user, ReservationId: id})
	})
}

// arm keeps one timer armed for the earliest hold deadline (the deadline
// heap's top); it re-arms only when that deadline moves earlier or the timer
// fired, so a hold costs no timer of its own.
func (a *seatActor) arm() {
	e, ok := a.state.nextExpiry()
	if !ok {
		return
	}
	if a.expiry != nil && a.expiryAt <= e.atMs {
		return // armed for this deadline or an earlier one
	}
	if a.expiry != nil {
		a.expiry.Stop()
	}
	a.expiryAt = e.atMs
	d := max(time.UnixMilli(e.atMs).Sub(a.cfg.Now()), 0)
	a.expiry = a.j.After(d, a.onExpiryTimer)
}

// onExpiryTimer expires the holds whose time has come and arms the timer
// for the next deadline. If the expiries could not be stored, it retries.
func (a *seatActor) onExpiryTimer() {
	a.expiry = nil
	due := dueExpiries(a.state, a.cfg.Now())
	a.expire(due)
	if len(due) > 0 && a.state.anyDue(a.cfg.Now()) {
		a.expiryAt = 0
		a.expiry = a.j.After(seatRetryMin, a.onExpiryTimer)
		return
	}
	a.arm()
}

// ---- the payment saga ----

func (a *seatActor) pay(ctx actor.Context, c *messages.PayReservation) {
	now := a.cfg.Now()
	if !a.ready(ctx, now) {
		return
	}
	if a.confirming(ctx, c.GetReservationId()) {
		return
	}
	action, started, rej := decidePay(a.state, c, now)
	id := c.GetReservationId()
	switch action {
	case payReject:
		if a.state.reservations[id] == nil {
			a.fromArchive(ctx, id, func(r *messages.Reservation) proto.Message {
				return a.decideClosed(r, func(s *seatState) (proto.Message, *messages.Rejection) {
					action, _, rej := decidePay(s, c, now)
					if action == payDone || rej != nil {
						return nil, rej
					}
					return &messages.PaymentStarted{}, nil // cannot happen for a closed reservation
				})
			})
			return
		}
		a.j.Reply(ctx, rej)
	case payDone:
		a.j.Reply(ctx, a.result(a.state.reservations[id]))
	case payJoin:
		p := a.payments[id]
		if p == nil { // cannot happen: Started re-drives every payment
			p = &payment{}
			a.payments[id] = p
			a.debit(id)
		}
		if ctx.Sender() != nil {
			p.waiters = append(p.waiters, ctx.Sender())
		}
	case payStart:
		if !a.persist(ctx, started) {
			return
		}
		p := &payment{}
		if ctx.Sender() != nil {
			p.waiters = append(p.waiters, ctx.Sender())
		}
		a.payments[id] = p
		// Debit only once the lock is durable: a crash then always finds
		// the payment in the journal and re-drives it.
		a.j.AfterDurable(func() { a.debit(id) })
	}
}

// debit asks the wallet to take the payment (askWallet) and handles the
// outcome as a debitOutcome. The wallet's debit is idempotent by
// reservation id, so repeating it after an unknown outcome is safe.
func (a *seatActor) debit(id int64) {
	p, r := a.payments[id], a.state.held(id)
	if p == nil || p.inFlight {
		return
	}
	if r == nil || !r.Paying {
		delete(a.payments, id)
		return
	}
	p.inFlight = true
	p.attempt++
	cmd := &messages.DebitPayment{UserId: r.UserId, ReservationId: id, Amount: r.Price, IdempotencyKey: r.IdempotencyKey}
	attempt := p.attempt
	a.askWallet(cmd.UserId, cmd, a.cfg.DebitTimeout, func(reply proto.Message, err error) {
		a.onDebitOutcome(&debitOutcome{id: id, attempt: attempt, reply: reply, err: err})
	})
}

// askWallet sends cmd to user's wallet, waiting at most timeout, and runs
// then with the answer on this incarnation's goroutine (not at all if the
// actor was replaced meanwhile). No goroutine waits for the answer where
// the router can avoid it (cluster.RequestAsync).
func (a *seatActor) askWallet(user int64, cmd proto.Message, timeout time.Duration, then func(proto.Message, error)) {
	router, post := a.cfg.Router, a.j.Post()
	if router == nil {
		post(func() { then(nil, errors.New("no router to reach the wallet")) })
		return
	}
	cluster.RequestAsync(router, "wallet", strconv.FormatInt(user, 10), cmd, timeout, func(reply proto.Message, err error) {
		post(func() { then(reply, err) })
	})
}

// onDebitOutcome ends the saga on a definite answer of the wallet, or
// schedules another debit when the outcome is unknown.
func (a *seatActor) onDebitOutcome(o *debitOutcome) {
	p := a.payments[o.id]
	if p == nil || o.attempt != p.attempt {
		return
	}
	p.inFlight = false
	r := a.state.held(o.id)
	if r == nil || !r.Paying {
		delete(a.payments, o.id)
		return
	}
	var rej *messages.Rejection
	wr, _ := o.reply.(*messages.WalletResult)
	switch {
	case o.err == nil && wr.GetRejection() != nil:
		rej = wr.GetRejection()
	case o.err != nil:
		errors.As(o.err, &rej)
	}
	now := a.cfg.Now()
	switch {
	case o.err == nil && rej == nil && wr.GetPayment() != nil:
		paidAt := wr.GetPayment().GetAtMs()
		if paidAt == 0 {
			paidAt = now.UnixMilli()
		}
		if perr := a.j.Persist(&messages.ReservationConfirmed{ReservationId: o.id, PaidAtMs: paidAt, BalanceAfter: wr.GetPayment().GetBalanceAfter()}); perr != nil {
			a.retryDebit(o.id, p, errors.New(perr.GetMessage()))
			return
		}
		a.finish(o.id, p, a.result(r))
	case rej != nil && rej.GetCode() != messages.CodeStoreUnavailable:
		events := []proto.Message{&messages.PaymentAborted{ReservationId: o.id, Code: rej.GetCode(), AtMs: now.UnixMilli()}}
		if now.UnixMilli() >= r.ExpiresAtMs {
			events = append(events, &messages.HoldExpired{ReservationId: o.id, AtMs: now.UnixMilli()})
		}
		if perr := a.j.Persist(events...); perr != nil {
			a.retryDebit(o.id, p, errors.New(perr.GetMessage()))
			return
		}
		a.arm()
		a.finish(o.id, p, proto.Clone(rej))
	default:
		err := o.err
		if err == nil {
			err = fmt.Errorf("unexpected wallet reply %T", o.reply)
		}
		a.retryDebit(o.id, p, err)
	}
}

// retryDebit answers the waiters that the payment is pending and asks the
// wallet again after a backoff: the debit is idempotent by reservation id,
// and a debit that went through is answered again, so the saga ends paid.
func (a *seatActor) retryDebit(id int64, p *payment, err error) {
	p.backoff = min(max(2*p.backoff, seatRetryMin), seatRetryMax)
	a.log.Warn("payment not settled; retrying", "reservation", id, "attempt", p.attempt, "in", p.backoff, "err", err)
	busy := messages.Reject(messages.CodeStoreUnavailable,
		"payment of reservation %d is pending; retry with the same idempotency key", id)
	for _, w := range p.waiters {
		a.j.ReplyTo(w, busy)
	}
	p.waiters = nil
	p.retry = a.j.After(p.backoff, func() { a.debit(id) })
}

// finish ends a payment (paid, or aborted and perhaps expired) and every
// waiter gets reply: once the slot is released when the hold expired
// meanwhile; at once otherwise (a paid seat's slot went with the debit).
func (a *seatActor) finish(id int64, p *payment, reply proto.Message) {
	delete(a.payments, id)
	if p.retry != nil {
		p.retry.Stop()
	}
	r := a.state.reservations[id]
	switch r.Status {
	case messages.ReservationStatus_RESERVATION_HELD:
	case messages.ReservationStatus_RESERVATION_CONFIRMED:
		// The wallet released the slot with the debit.
	default: // aborted and expired meanwhile
		a.releaseThenAnswer(r, p.waiters, reply)
		return
	}
	for _, w := range p.waiters {
		a.j.ReplyTo(w, reply)
	}
}

// result is the reply carrying a copy of the reservation as a caller sees
// it (the state keeps changing after the reply is queued).
func (a *seatActor) result(r *messages.Reservation) *messages.ReservationResult {
	v := &messages.Reservation{}
	copyReservation(v, r)
	v.ConcertOptionId = a.optionID
	if a.cat != nil {
		v.ConcertId = a.cat.concertID
	}
	return &messages.ReservationResult{Reservation: v}
}
