package actors

import (
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/cluster"
	"github.com/concert/ticketing/messages"
)

// MaxCharge is the largest amount one ChargePoints may add.
const MaxCharge = 1_000_000_000

// MaxBalance is the largest balance a wallet may hold.
const MaxBalance = 1_000_000_000_000

// Wallet defaults, used where WalletConfig leaves a field zero.
const (
	walletDefaultHoldLimit = 4
	walletDefaultSnapshot  = 100
	walletDefaultIdleTTL   = 2 * time.Minute
	walletJournalPrefix    = "wallet/"
)

// WalletConfig configures the wallet actors (kind "wallet", one per user,
// identity = the user id in decimal).
type WalletConfig struct {
	Journal Journal
	// HoldLimit is the most seats a user may hold at once, across dates
	// (default 4).
	HoldLimit int
	// SnapshotEvery is the number of events between snapshots (default 100;
	// negative: never).
	SnapshotEvery int
	// IdleTTL passivates a wallet after this long without messages (default
	// 2 minutes; negative: never).
	IdleTTL time.Duration
	Now     func() time.Time
	Logger  *slog.Logger
}

func (c WalletConfig) withDefaults() WalletConfig {
	if c.HoldLimit <= 0 {
		c.HoldLimit = walletDefaultHoldLimit
	}
	if c.SnapshotEvery == 0 {
		c.SnapshotEvery = walletDefaultSnapshot
	}
	switch {
	case c.IdleTTL == 0:
		c.IdleTTL = walletDefaultIdleTTL
	case c.IdleTTL < 0:
		c.IdleTTL = 0
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// NewWalletProducer returns the producer of wallet actors for
// cluster.NewLocal (kind "wallet"). Each wallet journals under
// "wallet/<userId>".
//
// A wallet answers *messages.WalletResult on success and a bare
// *messages.Rejection on refusal, in both cases only once the state the
// answer rests on is durable.
func NewWalletProducer(cfg WalletConfig) cluster.Producer {
	cfg = cfg.withDefaults()
	return func(identity string) actor.Actor {
		userID, err := strconv.ParseInt(identity, 10, 64)
		if err != nil || userID <= 0 {
			userID = 0 // every command is refused, see Receive
		}
		w := &walletActor{cfg: cfg, identity: identity, model: newWalletModel(userID, cfg.HoldLimit)}
		w.j = NewJournaled(JournaledOptions{
			ID:            walletJournalPrefix + identity,
			Journal:       cfg.Journal,
			Model:         w.model,
			SnapshotEvery: cfg.SnapshotEvery,
			IdleTTL:       cfg.IdleTTL,
			Logger:        cfg.Logger.With("actor", walletJournalPrefix+identity),
		})
		return w
	}
}

type walletActor struct {
	cfg      WalletConfig
	identity string
	model    *walletModel
	j        *Journaled
}

// Receive implements actor.Actor.
func (w *walletActor) Receive(ctx actor.Context) {
	if w.j.Intercept(ctx) {
		return
	}
	msg := ctx.Message()
	switch msg.(type) {
	case actor.SystemMessage, actor.AutoReceiveMessage:
		return
	}
	if _, ok := msg.(proto.Message); !ok {
		return
	}
	if w.model.userID == 0 {
		w.j.Reply(ctx, messages.Reject(messages.CodeInvalidRequest, "wallet %q: not a user id", w.identity))
		return
	}
	now := w.cfg.Now()
	switch msg := msg.(type) {
	case *messages.GetBalance:
		w.j.Reply(ctx, w.model.result(nil))
	case *messages.ChargePoints:
		events, rej := w.model.decideCharge(msg, now)
		w.handle(ctx, events, rej)
	case *messages.DebitPayment:
		events, payment, rej := w.model.decideDebit(msg, now)
		if rej != nil {
			w.j.Reply(ctx, rej)
			return
		}
		w.j.Persist(events...)
		if payment == nil {
			payment = w.model.payments[msg.GetReservationId()]
		}
		w.j.Reply(ctx, w.model.result(payment))
	case *messages.LookupPayment:
		w.j.Reply(ctx, w.model.result(w.model.lookup(msg.GetIdempotencyKey())))
	case *messages.TakeHoldSlot:
		events, rej := w.model.decideTakeSlot(msg, now)
		w.j.Persist(events...)
		if rej != nil {
			w.j.Reply(ctx, rej)
			return
		}
		w.j.Reply(ctx, w.model.result(nil))
	case *messages.ReleaseHoldSlot:
		w.j.Persist(w.model.decideReleaseSlot(msg)...)
		w.j.Reply(ctx, w.model.result(nil))
	default:
		w.j.Reply(ctx, messages.Reject(messages.CodeInvalidRequest, "wallet %s cannot handle %T", w.identity, msg))
	}
}

// handle persists a decision's events and replies with the balance, or
// replies with its rejection.
func (w *walletActor) handle(ctx actor.Context, events []proto.Message, rej *messages.Rejection) {
	if rej != nil {
		w.j.Reply(ctx, rej)
		return
	}
	w.j.Persist(events...)
	w.j.Reply(ctx, w.model.result(nil))
}

// walletModel is a wallet's domain state. Apply is its only mutator.
type walletModel struct {
	userID    int64
	holdLimit int

	balance      int64
	chargedTotal int64
	paymentList  []*messages.Payment // in debit order, for deterministic snapshots
	payments     map[int64]*messages.Payment
	byKey        map[string]*messages.Payment
	slots        []*messages.HoldSlot
}

var _ Model = (*walletModel)(nil)

func newWalletModel(userID int64, holdLimit int) *walletModel {
	return &walletModel{
		userID:    userID,
		holdLimit: holdLimit,
		payments:  map[int64]*messages.Payment{},
		byKey:     map[string]*messages.Payment{},
	}
}

// result is the reply to a successful command.
func (m *walletModel) result(p *messages.Payment) *messages.WalletResult {
	if p != nil {
		p = proto.Clone(p).(*messages.Payment)
	}
	return &messages.WalletResult{UserId: m.userID, Balance: m.balance, Payment: p}
}

func (m *walletModel) lookup(key string) *messages.Payment {
	if key == "" {
		return nil
	}
	return m.byKey[key]
}

// decideCharge turns ChargePoints into PointsCharged or a rejection.
func (m *walletModel) decideCharge(c *messages.ChargePoints, now time.Time) ([]proto.Message, *messages.Rejection) {
	amount := c.GetAmount()
	if amount < 1 || amount > MaxCharge {
		return nil, messages.Reject(messages.CodeInvalidAmount, "a charge must be between 1 and %d, not %d", MaxCharge, amount)
	}
	if m.balance > MaxBalance-amount {
		return nil, messages.Reject(messages.CodeBalanceLimit, "balance %d + %d would exceed %d", m.balance, amount, MaxBalance)
	}
	return []proto.Message{&messages.PointsCharged{
		Amount:       amount,
		BalanceAfter: m.balance + amount,
		AtMs:         now.UnixMilli(),
	}}, nil
}

// decideDebit turns DebitPayment into PaymentDebited, or answers a payment
// already recorded (no events, payment set), or refuses.
//
// The idempotency key is checked first, so a key reused for another
// reservation or another amount is refused even when that reservation was
// paid; then the reservation id (the payment id) makes a repeated debit
// return the first payment unchanged.
func (m *walletModel) decideDebit(c *messages.DebitPayment, now time.Time) ([]proto.Message, *messages.Payment, *messages.Rejection) {
	rid, amount, key := c.GetReservationId(), c.GetAmount(), c.GetIdempotencyKey()
	if key != "" {
		if p := m.byKey[key]; p != nil {
			if p.GetReservationId() != rid || p.GetAmount() != amount {
				return nil, nil, messages.Reject(messages.CodeIdempotencyKeyReused,
					"idempotency key already used for reservation %d, amount %d", p.GetReservationId(), p.GetAmount())
			}
			return nil, p, nil
		}
	}
	if p := m.payments[rid]; p != nil {
		return nil, p, nil
	}
	if rid <= 0 {
		return nil, nil, messages.Reject(messages.CodeInvalidRequest, "reservation id must be positive, not %d", rid)
	}
	if amount <= 0 {
		return nil, nil, messages.Reject(messages.CodeInvalidAmount, "a payment must be positive, not %d", amount)
	}
	if m.balance < amount {
		return nil, nil, messages.Reject(messages.CodeInsufficientBalance, "balance %d is less than %d", m.balance, amount)
	}
	return []proto.Message{&messages.PaymentDebited{
		ReservationId:  rid,
		Amount:         amount,
		BalanceAfter:   m.balance - amount,
		IdempotencyKey: key,
		AtMs:           now.UnixMilli(),
	}}, nil, nil
}

// decideTakeSlot claims one of the user's hold slots. It may return events
// together with a rejection: slots that ran out are released on the way,
// whatever the answer.
func (m *walletModel) decideTakeSlot(c *messages.TakeHoldSlot, now time.Time) ([]proto.Message, *messages.Rejection) {
	rid, nowMs := c.GetReservationId(), now.UnixMilli()
	if rid <= 0 {
		return nil, messages.Reject(messages.CodeInvalidRequest, "reservation id must be positive, not %d", rid)
	}
	var events []proto.Message
	live := 0
	for _, s := range m.slots {
		if s.GetExpiresAtMs() <= nowMs {
			events = append(events, &messages.HoldSlotReleased{ReservationId: s.GetReservationId()})
			continue
		}
		if s.GetReservationId() == rid {
			return events, nil // already holds a live slot
		}
		live++
	}
	if live >= m.holdLimit {
		return events, messages.Reject(messages.CodeHoldLimit, "user %d already holds %d seats", m.userID, live)
	}
	return append(events, &messages.HoldSlotTaken{ReservationId: rid, ExpiresAtMs: c.GetExpiresAtMs()}), nil
}

// decideReleaseSlot frees a reservation's slot if it still has one.
func (m *walletModel) decideReleaseSlot(c *messages.ReleaseHoldSlot) []proto.Message {
	for _, s := range m.slots {
		if s.GetReservationId() == c.GetReservationId() {
			return []proto.Message{&messages.HoldSlotReleased{ReservationId: s.GetReservationId()}}
		}
	}
	return nil
}

// Apply implements Model.
func (m *walletModel) Apply(event proto.Message) {
	switch e := event.(type) {
	case *messages.PointsCharged:
		m.balance += e.GetAmount()
		m.chargedTotal += e.GetAmount()
	case *messages.PaymentDebited:
		p := &messages.Payment{
			ReservationId:  e.GetReservationId(),
			Amount:         e.GetAmount(),
			BalanceAfter:   e.GetBalanceAfter(),
			IdempotencyKey: e.GetIdempotencyKey(),
			AtMs:           e.GetAtMs(),
		}
		m.balance -= e.GetAmount()
		m.addPayment(p)
	case *messages.HoldSlotTaken:
		m.removeSlot(e.GetReservationId())
		m.slots = append(m.slots, &messages.HoldSlot{ReservationId: e.GetReservationId(), ExpiresAtMs: e.GetExpiresAtMs()})
	case *messages.HoldSlotReleased:
		m.removeSlot(e.GetReservationId())
	}
}

func (m *walletModel) addPayment(p *messages.Payment) {
	m.paymentList = append(m.paymentList, p)
	m.payments[p.GetReservationId()] = p
	if k := p.GetIdempotencyKey(); k != "" {
		m.byKey[k] = p
	}
}

func (m *walletModel) removeSlot(rid int64) {
	for i, s := range m.slots {
		if s.GetReservationId() == rid {
			m.slots = append(m.slots[:i:i], m.slots[i+1:]...)
			return
		}
	}
}

// Snapshot implements Model.
func (m *walletModel) Snapshot() proto.Message {
	s := &messages.WalletSnapshot{Balance: m.balance, ChargedTotal: m.chargedTotal}
	for _, p := range m.paymentList {
		s.Payments = append(s.Payments, proto.Clone(p).(*messages.Payment))
	}
	for _, h := range m.slots {
		s.Slots = append(s.Slots, proto.Clone(h).(*messages.HoldSlot))
	}
	return s
}

// Restore implements Model.
func (m *walletModel) Restore(snapshot proto.Message) error {
	s, ok := snapshot.(*messages.WalletSnapshot)
	if !ok {
		return fmt.Errorf("wallet %d restore: snapshot is %T, want *messages.WalletSnapshot", m.userID, snapshot)
	}
	fresh := newWalletModel(m.userID, m.holdLimit)
	fresh.balance, fresh.chargedTotal = s.GetBalance(), s.GetChargedTotal()
	for _, p := range s.GetPayments() {
		fresh.addPayment(proto.Clone(p).(*messages.Payment))
	}
	for _, h := range s.GetSlots() {
		fresh.slots = append(fresh.slots, proto.Clone(h).(*messages.HoldSlot))
	}
	*m = *fresh
	return nil
}
