package actors

import (
	"errors"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/messages"
)

// pendingSlot is a hold whose caller waits for the user's cross-date hold
// slot (the wallet's TakeHoldSlot) as well as for the hold's own event.
type pendingSlot struct {
	seq    int64      // the hold event's sequence number
	caller *actor.PID // nil for a hold sent without a reply address
	// recovered marks a hold this incarnation recovered from the journal
	// and asks the wallet about again (reconfirmSlots): in doubt, it is
	// kept and asked about later, since it may have been acknowledged.
	recovered bool
	backoff   time.Duration
	deferred  []deferredMsg // reads (and, if recovered, commands) held back
}

// takeSlot asks the user's wallet for one of the user's hold slots while
// the hold's event is being written, so a hold costs one commit round, not
// two in a row. onSlot answers the caller once both are durable; a refused
// or doubtful slot cancels the hold (a journaled compensation) before the
// caller hears the refusal.
//
// Only holds that won their seat reach the wallet: a refused hold (the
// seat is taken, the date's limit is reached) costs no wallet write.
func (a *seatActor) takeSlot(r *messages.Reservation, caller *actor.PID) {
	a.askSlot(r, &pendingSlot{seq: a.j.Applied(), caller: caller})
}

// askSlot sends the TakeHoldSlot of a pending slot.
func (a *seatActor) askSlot(r *messages.Reservation, p *pendingSlot) {
	a.slots[r.Id] = p
	id := r.Id
	a.askWallet(r.UserId, &messages.TakeHoldSlot{UserId: r.UserId, ReservationId: id, ExpiresAtMs: r.ExpiresAtMs},
		a.cfg.DebitTimeout, func(reply proto.Message, err error) { a.onSlot(id, reply, err) })
}

// onSlot ends a hold's wait for its slot: taken, the caller gets the
// reservation once the hold is durable; refused (HOLD_LIMIT), the hold is
// cancelled and the caller gets the refusal; unknown (the wallet did not
// answer), the hold is cancelled, the slot released in case it was taken,
// and the caller gets STORE_UNAVAILABLE.
func (a *seatActor) onSlot(id int64, reply proto.Message, err error) {
	p := a.slots[id]
	if p == nil {
		return
	}
	delete(a.slots, id)
	defer func() {
		if a.slots[id] != p {
			a.serveDeferred(p, nil)
		}
	}()
	var rej *messages.Rejection
	if wr, ok := reply.(*messages.WalletResult); ok && err == nil {
		rej = wr.GetRejection()
	}
	if err != nil && !errors.As(err, &rej) {
		rej = nil
	}
	r := a.state.reservations[id]
	if p.recovered {
		a.onRecoveredSlot(r, p, err == nil && rej == nil, rej != nil && rej.GetCode() != messages.CodeStoreUnavailable)
		return
	}
	switch {
	case err == nil && rej == nil && (r == nil || r.Status != messages.ReservationStatus_RESERVATION_HELD):
		// The hold ran out (a HOLD_TTL shorter than the wallet's answer)
		// before its holder heard of it: the slot goes back, and the holder
		// hears the hold expired rather than a 200 for a hold it never had.
		a.releaseSlot(r)
		a.j.ReplyTo(p.caller, rejectHoldExpired(id))
		return
	case err == nil && rej == nil:
		a.j.ReplyAt(p.seq, p.caller, a.result(r))
		return
	case rej == nil || rej.GetCode() == messages.CodeStoreUnavailable:
		a.log.Warn("hold slot in doubt; cancelling the hold", "reservation", id, "err", err)
		rej = messages.Reject(messages.CodeStoreUnavailable,
			"the hold of reservation %d could not be confirmed; retry shortly", id)
		a.undoHold(r, true, p.caller, rej)
	default:
		rej = proto.Clone(rej).(*messages.Rejection)
		a.undoHold(r, false, p.caller, rej)
	}
}

// reconfirmSlots asks the wallet again for the slot of every unpaid hold
// this incarnation recovered. A hold's event is written at the same time as
// its slot is asked for, so a crash or a failed write can leave a durable
// hold whose slot was never taken or was refused, and whose cancellation
// was never written: kept, it would let its user hold more seats than the
// limit. Taking a slot is idempotent (a hold that has its slot is answered
// at once, with no write); a refused slot cancels the hold, one in doubt is
// asked about again later. Until the wallet answers, commands and reads of
// the hold wait (confirming); while it is in doubt they are refused
// STORE_UNAVAILABLE.
func (a *seatActor) reconfirmSlots() {
	if a.cfg.Router == nil {
		return
	}
	for _, id := range a.state.sortedIDs(a.state.live) {
		r := a.state.reservations[id]
		if r == nil || r.Paying || r.Status != messages.ReservationStatus_RESERVATION_HELD {
			continue
		}
		if _, pending := a.slots[id]; pending {
			continue
		}
		a.askSlot(r, &pendingSlot{seq: a.j.Applied(), recovered: true})
	}
}

// onRecoveredSlot ends the wait of a recovered hold for its slot: taken,
// the hold stands; refused, it is cancelled (unless its time ran out: then
// it expires as any other); in doubt, the wallet is asked again after a
// backoff while the hold lives.
func (a *seatActor) onRecoveredSlot(r *messages.Reservation, p *pendingSlot, taken, refused bool) {
	if r == nil || r.Status != messages.ReservationStatus_RESERVATION_HELD || r.Paying {
		return
	}
	now := a.cfg.Now()
	switch {
	case taken:
	case refused:
		if !isDue(r, now.UnixMilli()) {
			a.log.Warn("recovered hold has no slot; cancelling it", "reservation", r.Id)
			a.undoHold(r, false, nil, nil)
		}
	default:
		p.backoff = min(max(2*p.backoff, seatRetryMin), seatRetryMax)
		a.slots[r.Id] = p
		a.serveDeferred(p, messages.Reject(messages.CodeStoreUnavailable,
			"reservation %d cannot be confirmed now; retry shortly", r.Id))
		id := r.Id
		a.j.After(p.backoff, func() {
			if a.slots[id] != p {
				return
			}
			if r := a.state.held(id); r != nil && !r.Paying {
				a.askSlot(r, p)
				return
			}
			delete(a.slots, id)
			a.serveDeferred(p, nil)
		})
	}
}

// undoHold cancels a hold whose slot was refused or is in doubt, releasing
// the slot too when it may have been taken. If the cancellation cannot be
// queued now (the node's write admission is full), the hold stays
// tentative — other holds of its seat wait, reads show it free or wait —
// and the cancellation is tried again shortly: left HELD until its expiry,
// it would keep the seat from everyone and its user above the limit.
//
// caller (if any) hears refusal only once the cancellation is queued (and
// so after it is durable); if it cannot be queued, the caller hears
// STORE_UNAVAILABLE at once: the hold is still in the journal, and a crash
// before its cancellation is written lets the recovered seat actor take a
// slot freed meanwhile and keep the hold — a refusal (HOLD_LIMIT) would
// then be contradicted by a hold that stands.
func (a *seatActor) undoHold(r *messages.Reservation, releaseSlot bool, caller *actor.PID, refusal *messages.Rejection) {
	if r == nil || r.Status != messages.ReservationStatus_RESERVATION_HELD || r.Paying {
		a.j.ReplyTo(caller, refusal)
		return
	}
	if rej := a.j.Persist(&messages.HoldCancelled{ReservationId: r.Id, AtMs: a.cfg.Now().UnixMilli()}); rej != nil {
		a.log.Warn("hold with a refused slot not cancelled yet; retrying", "reservation", r.Id, "reason", rej.GetMessage())
		if caller != nil {
			a.j.ReplyTo(caller, messages.Reject(messages.CodeStoreUnavailable,
				"the hold of reservation %d could not be settled now; retry shortly", r.Id))
		}
		id, p := r.Id, &pendingSlot{seq: a.j.Applied()}
		if old := a.slots[id]; old != nil {
			p.deferred = old.deferred
		}
		a.slots[id] = p
		a.j.After(seatRetryMin, func() {
			if a.slots[id] != p {
				return
			}
			delete(a.slots, id)
			a.undoHold(a.state.reservations[id], releaseSlot, nil, nil)
			if a.slots[id] != p && a.slots[id] != nil {
				a.slots[id].deferred = append(a.slots[id].deferred, p.deferred...)
				return
			}
			a.serveDeferred(p, nil)
		})
		return
	}
	if releaseSlot {
		a.releaseSlot(r)
	}
	a.j.ReplyTo(caller, refusal)
}

// confirming refuses a command on a reservation whose hold still waits for
// its slot: its holder has not been told it exists yet. A read of such a
// hold, and any command on a hold recovered from the journal whose slot
// is being asked about again (reconfirmSlots), waits instead for the
// wallet's answer and is then served as if it arrived then: a hold the
// wallet refuses is never shown as held.
func (a *seatActor) confirming(ctx actor.Context, id int64) bool {
	p, ok := a.slots[id]
	if !ok {
		return false
	}
	if _, read := ctx.Message().(*messages.GetReservation); (read || p.recovered) && ctx.Sender() != nil && ctx.Self() != nil {
		p.deferred = append(p.deferred, deferredMsg{msg: ctx.Message(), sender: ctx.Sender()})
		a.self = ctx.Self()
		return true
	}
	// At once: the refusal claims nothing about durable state.
	a.j.Refuse(ctx, messages.Reject(messages.CodeStoreUnavailable, "reservation %d is being confirmed; retry shortly", id))
	return true
}

// behindPendingHold defers a hold of a seat whose hold waits for its slot
// (not one recovered: that one may have been acknowledged): the waiting
// hold may yet be refused, and a refused hold never happened, so nobody may
// be turned away on its account. The hold is decided once the wallet
// answered.
func (a *seatActor) behindPendingHold(ctx actor.Context, seatID int64) bool {
	rid, held := a.state.holder[seatID]
	if !held {
		return false
	}
	p, ok := a.slots[rid]
	if !ok || p.recovered || ctx.Sender() == nil || ctx.Self() == nil {
		return false
	}
	p.deferred = append(p.deferred, deferredMsg{msg: ctx.Message(), sender: ctx.Sender()})
	a.self = ctx.Self()
	return true
}

// withTentative adds to free (seat ids by seat number) the seats whose
// only hold still waits for its slot: until the wallet grants it, that hold
// has not happened (a reader seeing the seat free is linearized before it).
func (a *seatActor) withTentative(free []int64) []int64 {
	var extra map[int64]bool
	for rid, p := range a.slots {
		if p.recovered {
			continue
		}
		if r := a.state.held(rid); r != nil && a.state.holder[r.SeatId] == rid {
			if extra == nil {
				extra = map[int64]bool{}
			}
			extra[r.SeatId] = true
		}
	}
	if extra == nil || a.cat == nil {
		return free
	}
	out := make([]int64, 0, len(free)+len(extra))
	i := 0
	for _, id := range a.cat.order {
		switch {
		case i < len(free) && free[i] == id:
			out = append(out, id)
			i++
		case extra[id]:
			out = append(out, id)
		}
	}
	return out
}

// deferredMsg is a message held back by confirming.
type deferredMsg struct {
	msg    any
	sender *actor.PID
}

// serveDeferred hands the messages held back for a pending slot back to the
// actor (behind those already queued), or, when unavailable is set, refuses
// them STORE_UNAVAILABLE.
func (a *seatActor) serveDeferred(p *pendingSlot, unavailable *messages.Rejection) {
	for _, d := range p.deferred {
		if unavailable != nil || a.self == nil {
			a.root.Send(d.sender, unavailableOr(unavailable))
			continue
		}
		a.root.RequestWithCustomSender(a.self, d.msg, d.sender)
	}
	p.deferred = nil
}

func unavailableOr(rej *messages.Rejection) *messages.Rejection {
	if rej != nil {
		return rej
	}
	return messages.Reject(messages.CodeStoreUnavailable, "the reservation is being confirmed; retry shortly")
}

// abandonSlots tells the callers still waiting for a slot, when the
// incarnation stops, that their hold's outcome is unknown. A slot taken
// meanwhile stays until the hold's expiry: the limit errs on the safe side.
func (a *seatActor) abandonSlots() {
	for id, p := range a.slots {
		a.serveDeferred(p, messages.Reject(messages.CodeStoreUnavailable,
			"seat/%d stopped while confirming reservation %d; retry", a.optionID, id))
		if p.caller != nil {
			a.root.Send(p.caller, messages.Reject(messages.CodeStoreUnavailable,
				"seat/%d stopped while confirming reservation %d; retry", a.optionID, id))
		}
	}
	clear(a.slots)
}

// slotReleaseWait bounds how long an answer waits for the wallet to release
// a slot: past it the answer goes anyway, and the slot frees itself at the
// hold's expiry.
const slotReleaseWait = time.Second

// slotRelease is the answer to the callers of a cancel or a payment, sent
// once the wallet has released the hold's slot.
type slotRelease struct {
	callers []*actor.PID
	reply   proto.Message
}

// releaseThenAnswer frees the reservation's hold slot once the change that
// ended the hold is durable, and answers callers once the wallet has
// released it (or slotReleaseWait passed): a user at the limit who hears
// that a cancel or a payment succeeded may hold another seat at once,
// instead of meeting HOLD_LIMIT until the release lands. If the
// incarnation stops first, the callers hear that the outcome is unknown.
func (a *seatActor) releaseThenAnswer(r *messages.Reservation, callers []*actor.PID, reply proto.Message) {
	callers = slices.DeleteFunc(slices.Clone(callers), func(c *actor.PID) bool { return c == nil })
	if a.cfg.Router == nil || len(callers) == 0 {
		a.releaseSlot(r)
		for _, c := range callers {
			a.j.ReplyTo(c, reply)
		}
		return
	}
	rel := &slotRelease{callers: callers, reply: reply}
	a.releases[rel] = struct{}{}
	user, id := r.UserId, r.Id
	a.j.AfterDurable(func() {
		a.askWallet(user, &messages.ReleaseHoldSlot{UserId: user, ReservationId: id}, slotReleaseWait, func(_ proto.Message, err error) {
			if err != nil {
				a.log.Warn("hold slot release not confirmed; it frees itself at the hold's expiry", "reservation", id, "err", err)
			}
			if _, ok := a.releases[rel]; !ok {
				return
			}
			delete(a.releases, rel)
			for _, c := range rel.callers {
				a.root.Send(c, rel.reply)
			}
		})
	})
}

// abandonReleases tells the callers still waiting for a slot's release,
// when the incarnation stops, that the outcome is unknown to it.
func (a *seatActor) abandonReleases() {
	for rel := range a.releases {
		for _, c := range rel.callers {
			a.root.Send(c, messages.Reject(messages.CodeStoreUnavailable,
				"seat/%d stopped while finishing; read the reservation to see its state", a.optionID))
		}
	}
	clear(a.releases)
}
