package actors

import (
	"fmt"
	"log/slog"
	"slices"
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
	// walletDefaultRetention is how long idempotency keys (of charges and
	// payments) and payment records are kept: 24 hours, as Stripe keeps
	// idempotency keys (docs.stripe.com/api/idempotent_requests).
	walletDefaultRetention = 24 * time.Hour
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
	// Retention is how long a charge's or payment's idempotency key is
	// honoured and a payment record kept (default 24 h). After it, a repeated
	// key is a new request. It must exceed the longest a payment saga can
	// stay unsettled (seconds, unless the store is down that long).
	Retention time.Duration
	// Admission, if set, is shared by all journaled actors of the node.
	Admission *Admission
	// SnapshotAdmission, if set, is shared likewise by their snapshots
	// (JournaledOptions.SnapshotAdmission).
	SnapshotAdmission *Admission
	Now               func() time.Time
	Logger            *slog.Logger
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
	if c.Retention <= 0 {
		c.Retention = walletDefaultRetention
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
	shared := cfg.withDefaults() // one copy for all wallets, not one each
	return func(identity string) actor.Actor {
		userID, err := strconv.ParseInt(identity, 10, 64)
		if err != nil || userID <= 0 {
			userID = 0 // every command is refused, see Receive
		}
		cfg := &shared
		w := &walletActor{cfg: cfg, identity: identity, model: newWalletModel(userID, cfg.HoldLimit, cfg.Retention)}
		w.j = NewJournaled(JournaledOptions{
			ID:                walletJournalPrefix + identity,
			Journal:           cfg.Journal,
			Model:             w.model,
			SnapshotEvery:     cfg.SnapshotEvery,
			IdleTTL:           cfg.IdleTTL,
			Admission:         cfg.Admission,
			SnapshotAdmission: cfg.SnapshotAdmission,
			Logger:            cfg.Logger, // Journaled names the actor in each line
		})
		return w
	}
}

type walletActor struct {
	cfg      *WalletConfig
	identity string
	model    *walletModel
	j        *Journaled
}

// Receive implements actor.Actor.
func (w *walletActor) Receive(ctx actor.Context) {
	defer w.j.Guard(ctx)
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
		events, first, rej := w.model.decideCharge(msg, now)
		if first != nil {
			// The key's first charge, answered again as it was.
			w.j.Reply(ctx, &messages.WalletResult{UserId: w.model.userID, Balance: first.GetBalanceAfter()})
			return
		}
		w.handle(ctx, events, rej)
	case *messages.DebitPayment:
		events, payment, rej := w.model.decideDebit(msg, now)
		if rej != nil {
			w.j.Reply(ctx, rej)
			return
		}
		if perr := w.j.Persist(events...); perr != nil {
			w.j.Refuse(ctx, perr)
			return
		}
		if payment == nil {
			payment = w.model.payments[msg.GetReservationId()]
		}
		w.j.Reply(ctx, w.model.result(payment))
	case *messages.LookupPayment:
		w.j.Reply(ctx, w.model.result(w.model.lookup(msg.GetIdempotencyKey())))
	case *messages.TakeHoldSlot:
		events, rej := w.model.decideTakeSlot(msg, now)
		if perr := w.j.Persist(events...); perr != nil {
			w.j.Refuse(ctx, perr)
			return
		}
		if rej != nil {
			w.j.Reply(ctx, rej)
			return
		}
		w.j.Reply(ctx, w.model.result(nil))
	case *messages.ReleaseHoldSlot:
		if perr := w.j.Persist(w.model.decideReleaseSlot(msg)...); perr != nil {
			w.j.Refuse(ctx, perr)
			return
		}
		// Answered once applied, not once durable: every later TakeHoldSlot
		// already sees the slot free, and a release lost in a crash only
		// makes the limit stricter until the hold's expiry frees the slot.
		if ctx.Sender() != nil {
			ctx.Respond(w.model.result(nil))
		}
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
	if perr := w.j.Persist(events...); perr != nil {
		w.j.Refuse(ctx, perr)
		return
	}
	w.j.Reply(ctx, w.model.result(nil))
}

// walletModel is a wallet's domain state. Apply is its only mutator.
//
// Payments and keyed charges are kept for the retention window only,
// measured on the events' own timestamps (so replay prunes exactly as live
// handling did): the state grows with the last day's activity, not with the
// wallet's history.
type walletModel struct {
	userID    int64
	holdLimit int
	retention time.Duration

	balance      int64
	chargedTotal int64
	paymentList  []*messages.Payment // in debit order, for deterministic snapshots
	payments     map[int64]*messages.Payment
	byKey        map[string]*messages.Payment
	chargeList   []*messages.Charge // keyed charges in order
	charges      map[string]*messages.Charge
	slots        []*messages.HoldSlot
}

var _ Model = (*walletModel)(nil)

func newWalletModel(userID int64, holdLimit int, retention time.Duration) *walletModel {
	return &walletModel{
		userID:    userID,
		holdLimit: holdLimit,
		retention: retention,
		// The maps are made on first use: most of the many wallets alive
		// in an on-sale never hold a charge or a payment in memory.
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

// decideCharge turns ChargePoints into PointsCharged or a rejection, or,
// for an idempotency key already used within the retention window, returns
// that first charge (no events): the same amount is answered as it was, any
// other amount is refused as a reused key.
func (m *walletModel) decideCharge(c *messages.ChargePoints, now time.Time) ([]proto.Message, *messages.Charge, *messages.Rejection) {
	amount, key := c.GetAmount(), c.GetIdempotencyKey()
	if first := m.charges[key]; key != "" && first != nil {
		if first.GetAmount() != amount {
			return nil, nil, messages.Reject(messages.CodeIdempotencyKeyReused,
				"idempotency key already used for a charge of %d", first.GetAmount())
		}
		return nil, first, nil
	}
	if amount < 1 || amount > MaxCharge {
		return nil, nil, messages.Reject(messages.CodeInvalidAmount, "a charge must be between 1 and %d, not %d", MaxCharge, amount)
	}
	if m.balance > MaxBalance-amount {
		return nil, nil, messages.Reject(messages.CodeBalanceLimit, "balance %d + %d would exceed %d", m.balance, amount, MaxBalance)
	}
	return []proto.Message{&messages.PointsCharged{
		Amount:         amount,
		BalanceAfter:   m.balance + amount,
		AtMs:           now.UnixMilli(),
		IdempotencyKey: key,
	}}, nil, nil
}

// decideDebit turns DebitPayment into PaymentDebited (and HoldSlotReleased
// for the reservation's slot, if it holds one), or answers a payment
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
	// A paid seat is no longer a hold: its slot is released in the same
	// write, so a user told "paid" may hold another seat at once.
	events := []proto.Message{&messages.PaymentDebited{
		ReservationId:  rid,
		Amount:         amount,
		BalanceAfter:   m.balance - amount,
		IdempotencyKey: key,
		AtMs:           now.UnixMilli(),
	}}
	return append(events, m.decideReleaseSlot(&messages.ReleaseHoldSlot{ReservationId: rid})...), nil, nil
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
		m.prune(e.GetAtMs())
		if k := e.GetIdempotencyKey(); k != "" {
			m.addCharge(&messages.Charge{IdempotencyKey: k, Amount: e.GetAmount(), BalanceAfter: e.GetBalanceAfter(), AtMs: e.GetAtMs()})
		}
	case *messages.PaymentDebited:
		m.prune(e.GetAtMs())
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

// prune drops the payments and keyed charges older than the retention
// window at nowMs (an event's timestamp). Both lists are in time order.
func (m *walletModel) prune(nowMs int64) {
	cutoff := nowMs - m.retention.Milliseconds()
	n := 0
	for n < len(m.paymentList) && m.paymentList[n].GetAtMs() < cutoff {
		p := m.paymentList[n]
		delete(m.payments, p.GetReservationId())
		if k := p.GetIdempotencyKey(); k != "" && m.byKey[k] == p {
			delete(m.byKey, k)
		}
		n++
	}
	if n > 0 {
		m.paymentList = slices.Clone(m.paymentList[n:])
	}
	n = 0
	for n < len(m.chargeList) && m.chargeList[n].GetAtMs() < cutoff {
		if c := m.chargeList[n]; m.charges[c.GetIdempotencyKey()] == c {
			delete(m.charges, c.GetIdempotencyKey())
		}
		n++
	}
	if n > 0 {
		m.chargeList = slices.Clone(m.chargeList[n:])
	}
}

func (m *walletModel) addCharge(c *messages.Charge) {
	m.chargeList = append(m.chargeList, c)
	if m.charges == nil {
		m.charges = map[string]*messages.Charge{}
	}
	m.charges[c.GetIdempotencyKey()] = c
}

func (m *walletModel) addPayment(p *messages.Payment) {
	m.paymentList = append(m.paymentList, p)
	if m.payments == nil {
		m.payments, m.byKey = map[int64]*messages.Payment{}, map[string]*messages.Payment{}
	}
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
	for _, c := range m.chargeList {
		s.Charges = append(s.Charges, proto.Clone(c).(*messages.Charge))
	}
	return s
}

// Restore implements Model.
func (m *walletModel) Restore(snapshot proto.Message) error {
	s, ok := snapshot.(*messages.WalletSnapshot)
	if !ok {
		return fmt.Errorf("wallet %d restore: snapshot is %T, want *messages.WalletSnapshot", m.userID, snapshot)
	}
	fresh := newWalletModel(m.userID, m.holdLimit, m.retention)
	fresh.balance, fresh.chargedTotal = s.GetBalance(), s.GetChargedTotal()
	for _, p := range s.GetPayments() {
		fresh.addPayment(proto.Clone(p).(*messages.Payment))
	}
	for _, h := range s.GetSlots() {
		fresh.slots = append(fresh.slots, proto.Clone(h).(*messages.HoldSlot))
	}
	for _, c := range s.GetCharges() {
		fresh.addCharge(proto.Clone(c).(*messages.Charge))
	}
	*m = *fresh
	return nil
}
