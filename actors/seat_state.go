package actors

import (
	"container/heap"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// ReservationID builds the id of the n-th reservation (n = 1, 2, 3…) of a
// concert option, so that any reservation id routes to its seat actor
// without a look-up.
func ReservationID(optionID, n int64) int64 { return optionID<<32 | n }

// OptionOfReservation is the concert option a reservation id belongs to.
func OptionOfReservation(id int64) int64 { return id >> 32 }

// reservationNo is the per-option counter part of a reservation id.
func reservationNo(id int64) int64 { return id & (1<<32 - 1) }

// seatState is the domain state of one seat actor: the open (HELD)
// reservations of its concert option, the seats sold for good, and the
// reservations closed since the last snapshot (they leave for the archive
// with the next one, so the state grows with live holds and seats, not with
// history), plus indexes derived from them. Apply is its only mutator; the
// indexes are rebuilt by Restore.
type seatState struct {
	optionID     int64
	nextNo       int64 // number of the next reservation, from 1
	reservations map[int64]*messages.Reservation
	holder       map[int64]int64 // seat id → the HELD reservation on it
	sold         map[int64]int64 // seat id → the CONFIRMED reservation that bought it
	live         map[int64]bool  // ids of HELD reservations (paying ones included)
	userHeld     map[int64]int   // user id → number of HELD reservations
	paying       map[int64]bool  // ids of reservations with a payment in flight
	closed       map[int64]bool  // ids of closed reservations not yet archived
	expiries     expiryQueue     // deadlines of HELD reservations
}

func newSeatState(optionID int64) *seatState {
	s := &seatState{optionID: optionID}
	s.reset()
	return s
}

func (s *seatState) reset() {
	s.nextNo = 1
	s.reservations = map[int64]*messages.Reservation{}
	s.holder = map[int64]int64{}
	s.sold = map[int64]int64{}
	s.closed = map[int64]bool{}
	s.expiries = nil
	s.live = map[int64]bool{}
	s.userHeld = map[int64]int{}
	s.paying = map[int64]bool{}
}

// Apply implements Model. Events about unknown reservations are ignored, so
// a replay never fails on them.
func (s *seatState) Apply(event proto.Message) {
	switch e := event.(type) {
	case *messages.SeatHeld:
		r := &messages.Reservation{
			Id:              e.GetReservationId(),
			UserId:          e.GetUserId(),
			SeatId:          e.GetSeatId(),
			ConcertOptionId: s.optionID,
			Price:           e.GetPrice(),
			Status:          messages.ReservationStatus_RESERVATION_HELD,
			ExpiresAtMs:     e.GetExpiresAtMs(),
			CreatedAtMs:     e.GetHeldAtMs(),
			UpdateAtMs:      e.GetHeldAtMs(),
		}
		s.reservations[r.Id] = r
		if no := reservationNo(r.Id); no >= s.nextNo {
			s.nextNo = no + 1
		}
		s.index(r)
	case *messages.HoldCancelled:
		if r := s.held(e.GetReservationId()); r != nil {
			s.unindex(r)
			r.Status = messages.ReservationStatus_RESERVATION_CANCELLED
			r.Paying = false
			r.UpdateAtMs = e.GetAtMs()
			s.closed[r.Id] = true
		}
	case *messages.HoldExpired:
		if r := s.held(e.GetReservationId()); r != nil {
			s.unindex(r)
			r.Status = messages.ReservationStatus_RESERVATION_EXPIRED
			r.Paying = false
			r.UpdateAtMs = e.GetAtMs()
			s.closed[r.Id] = true
		}
	// A payment under way, or one refused, leaves UpdateAtMs alone: the
	// contract shows neither (the reservation stays HELD), so a refused
	// payment must not look like a change.
	case *messages.PaymentStarted:
		if r := s.held(e.GetReservationId()); r != nil {
			r.Paying = true
			r.IdempotencyKey = e.GetIdempotencyKey()
			s.paying[r.Id] = true
		}
	case *messages.PaymentAborted:
		if r := s.held(e.GetReservationId()); r != nil {
			r.Paying = false
			r.IdempotencyKey = ""
			delete(s.paying, r.Id)
			s.expiries.push(r.ExpiresAtMs, r.Id) // it can expire again
		}
	case *messages.ReservationConfirmed:
		if r := s.held(e.GetReservationId()); r != nil {
			s.unindex(r)
			r.Status = messages.ReservationStatus_RESERVATION_CONFIRMED
			r.Paying = false
			r.PaidAmount = r.Price
			r.PaidAtMs = e.GetPaidAtMs()
			r.BalanceAfter = e.GetBalanceAfter()
			r.UpdateAtMs = e.GetPaidAtMs()
			s.sold[r.SeatId] = r.Id // sold for good
			s.closed[r.Id] = true
		}
	}
}

// held returns the reservation if it is HELD.
func (s *seatState) held(id int64) *messages.Reservation {
	r := s.reservations[id]
	if r == nil || r.Status != messages.ReservationStatus_RESERVATION_HELD {
		return nil
	}
	return r
}

// index records a reservation in the derived indexes.
func (s *seatState) index(r *messages.Reservation) {
	switch r.Status {
	case messages.ReservationStatus_RESERVATION_HELD:
		s.holder[r.SeatId] = r.Id
		s.live[r.Id] = true
		s.userHeld[r.UserId]++
		if r.Paying {
			s.paying[r.Id] = true
		}
		s.expiries.push(r.ExpiresAtMs, r.Id)
	case messages.ReservationStatus_RESERVATION_CONFIRMED:
		s.sold[r.SeatId] = r.Id
		s.closed[r.Id] = true
	default:
		s.closed[r.Id] = true
	}
}

// unindex removes a HELD reservation from the indexes of live holds and
// frees its seat.
func (s *seatState) unindex(r *messages.Reservation) {
	defer s.compactExpiries()
	if s.holder[r.SeatId] == r.Id {
		delete(s.holder, r.SeatId)
	}
	delete(s.live, r.Id)
	delete(s.paying, r.Id)
	if s.userHeld[r.UserId]--; s.userHeld[r.UserId] <= 0 {
		delete(s.userHeld, r.UserId)
	}
}

// SnapshotSize implements Sized: the reservations a snapshot holds.
func (s *seatState) SnapshotSize() int { return len(s.reservations) }

// Snapshot implements Model: the open reservations in id order and the sold
// seats in seat order, so equal states give equal snapshots. Closed
// reservations are left out: they go to the archive (Closed). The result
// shares nothing with the state, so it can be encoded on another goroutine.
func (s *seatState) Snapshot() proto.Message {
	snap := &messages.SeatSnapshot{NextReservationNo: s.nextNo}
	ids := s.sortedIDs(s.live)
	// One allocation for all the copies, and no reflection: proto.Clone
	// per reservation was a tenth of the server's CPU in fresh-holds,
	// where each date's snapshot carries up to a thousand open holds.
	copies := make([]messages.Reservation, len(ids))
	snap.Reservations = make([]*messages.Reservation, len(ids))
	for i, id := range ids {
		copyReservation(&copies[i], s.reservations[id])
		snap.Reservations[i] = &copies[i]
	}
	seats := make([]int64, 0, len(s.sold))
	for seat := range s.sold {
		seats = append(seats, seat)
	}
	slices.Sort(seats)
	for _, seat := range seats {
		snap.SoldSeats = append(snap.SoldSeats, &messages.SoldSeat{SeatId: seat, ReservationId: s.sold[seat]})
	}
	return snap
}

// copyReservation sets dst to a copy of src, field by field (every field
// is a plain scalar; TestCopyReservationCopiesEveryField fails when one is
// added and not copied here).
func copyReservation(dst, src *messages.Reservation) {
	dst.Id = src.Id
	dst.UserId = src.UserId
	dst.SeatId = src.SeatId
	dst.ConcertId = src.ConcertId
	dst.ConcertOptionId = src.ConcertOptionId
	dst.Price = src.Price
	dst.Status = src.Status
	dst.ExpiresAtMs = src.ExpiresAtMs
	dst.CreatedAtMs = src.CreatedAtMs
	dst.UpdateAtMs = src.UpdateAtMs
	dst.Paying = src.Paying
	dst.PaidAmount = src.PaidAmount
	dst.PaidAtMs = src.PaidAtMs
	dst.BalanceAfter = src.BalanceAfter
	dst.IdempotencyKey = src.IdempotencyKey
	// Fields a newer binary wrote (a rolling upgrade) survive, as with
	// proto.Clone.
	if u := src.ProtoReflect().GetUnknown(); len(u) > 0 {
		dst.ProtoReflect().SetUnknown(slices.Clone(u))
	}
}

// Closed implements Archiving: copies of the closed reservations still in
// the state, keyed by reservation id.
func (s *seatState) Closed() []ArchivedRecord {
	out := make([]ArchivedRecord, 0, len(s.closed))
	for _, id := range s.sortedIDs(s.closed) {
		c := &messages.Reservation{}
		copyReservation(c, s.reservations[id])
		out = append(out, ArchivedRecord{Key: id, Record: c})
	}
	return out
}

// Forget implements Archiving: the archived reservations leave the state.
func (s *seatState) Forget(ids []int64) {
	for _, id := range ids {
		if s.closed[id] {
			delete(s.closed, id)
			delete(s.reservations, id)
		}
	}
}

// NextDue implements Reminding: now while a payment is in flight (the saga
// must be driven), else the earliest deadline of a hold, else no open work.
func (s *seatState) NextDue() (time.Time, bool) {
	if len(s.paying) > 0 {
		return time.UnixMilli(0), true
	}
	if e, ok := s.nextExpiry(); ok {
		return time.UnixMilli(e.atMs), true
	}
	return time.Time{}, false
}

// nextExpiry is the earliest deadline of a hold that can expire (HELD, not
// being paid).
func (s *seatState) nextExpiry() (expiryEntry, bool) {
	return s.expiries.top(func(e expiryEntry) bool {
		r := s.reservations[e.id]
		return r != nil && r.Status == messages.ReservationStatus_RESERVATION_HELD && !r.Paying && r.ExpiresAtMs == e.atMs
	})
}

// compactExpiries rebuilds the deadline heap from the live holds once stale
// entries (of holds cancelled, paid or expired) outnumber them: amortised
// O(1) per hold, and the heap stays within twice the live holds.
func (s *seatState) compactExpiries() {
	if len(s.expiries) <= 2*len(s.live)+64 {
		return
	}
	s.expiries = s.expiries[:0]
	for id := range s.live {
		if r := s.reservations[id]; !r.Paying {
			s.expiries = append(s.expiries, expiryEntry{atMs: r.ExpiresAtMs, id: id})
		}
	}
	heap.Init(&s.expiries)
}

// existed reports whether reservation id was made on this option (it may
// since have left the state for the archive).
func (s *seatState) existed(id int64) bool {
	return OptionOfReservation(id) == s.optionID && reservationNo(id) >= 1 && reservationNo(id) < s.nextNo
}

// Restore implements Model.
func (s *seatState) Restore(snapshot proto.Message) error {
	snap, ok := snapshot.(*messages.SeatSnapshot)
	if !ok {
		return fmt.Errorf("restore seat/%d: unexpected snapshot %T", s.optionID, snapshot)
	}
	s.reset()
	s.nextNo = max(snap.GetNextReservationNo(), 1)
	for _, r := range snap.GetReservations() {
		r = proto.Clone(r).(*messages.Reservation)
		s.reservations[r.Id] = r
		s.index(r)
	}
	for _, sold := range snap.GetSoldSeats() {
		s.sold[sold.GetSeatId()] = sold.GetReservationId()
	}
	return nil
}

// sortedIDs returns the ids of the reservations in set (all of them when
// set is nil) in ascending order.
func (s *seatState) sortedIDs(set map[int64]bool) []int64 {
	var ids []int64
	if set == nil {
		ids = make([]int64, 0, len(s.reservations))
		for id := range s.reservations {
			ids = append(ids, id)
		}
	} else {
		ids = make([]int64, 0, len(set))
		for id := range set {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// ---- decisions: pure functions of (state, command, now) ----
//
// The hold, cancel and pay decisions expect a state without due holds: the
// actor applies dueExpiries first, so a hold whose time has passed but whose
// timer has not run yet counts as expired (its seat as free).

// seatCatalog is what a seat actor knows of its concert option.
type seatCatalog struct {
	known     bool // false: no such option
	concertID int64
	seats     map[int64]persistence.Seat // by seat id
	order     []int64                    // seat ids by seat number
}

func newSeatCatalog(opt persistence.ConcertOption, seats []persistence.Seat) *seatCatalog {
	c := &seatCatalog{known: true, concertID: opt.ConcertID, seats: make(map[int64]persistence.Seat, len(seats))}
	sorted := slices.Clone(seats)
	slices.SortFunc(sorted, func(a, b persistence.Seat) int { return a.SeatNo - b.SeatNo })
	for _, seat := range sorted {
		c.seats[seat.ID] = seat
		c.order = append(c.order, seat.ID)
	}
	return c
}

// isDue reports whether a hold that is not being paid has run out at now.
func isDue(r *messages.Reservation, nowMs int64) bool {
	return r.Status == messages.ReservationStatus_RESERVATION_HELD && !r.Paying && nowMs >= r.ExpiresAtMs
}

// anyDue reports whether a hold that is not being paid has run out at now
// and is not expired yet: a peek at the deadline heap.
func (s *seatState) anyDue(now time.Time) bool {
	e, ok := s.nextExpiry()
	return ok && e.atMs <= now.UnixMilli()
}

// dueExpiries returns a HoldExpired for every hold that ran out at now and
// is not being paid, in deadline order. Every command calls it, so it costs
// O(1) when nothing is due (a peek at the deadline heap) and O(k log n) for
// k due holds. It leaves the heap as it found it, but for stale entries.
func dueExpiries(s *seatState, now time.Time) []proto.Message {
	nowMs := now.UnixMilli()
	var events []proto.Message
	var taken []expiryEntry
	for {
		e, ok := s.nextExpiry()
		if !ok || e.atMs > nowMs {
			break
		}
		s.expiries.pop()
		taken = append(taken, e)
		events = append(events, &messages.HoldExpired{ReservationId: e.id, AtMs: nowMs})
	}
	// Put them back: they become stale once HoldExpired is applied, and
	// stay valid if the caller could not persist it.
	for _, e := range taken {
		s.expiries.push(e.atMs, e.id)
	}
	return events
}

// decideHold holds a free seat for a user, within the per-date hold limit
// (limit ≤ 0: none).
func decideHold(s *seatState, cat *seatCatalog, c *messages.HoldSeat, now time.Time, ttl time.Duration, limit int) (*messages.SeatHeld, *messages.Rejection) {
	if c.GetUserId() <= 0 {
		return nil, messages.Reject(messages.CodeInvalidRequest, "user id must be positive, not %d", c.GetUserId())
	}
	seat, ok := cat.seats[c.GetSeatId()]
	if !cat.known || !ok {
		return nil, messages.Reject(messages.CodeSeatNotFound, "seat %d is not a seat of concert date %d", c.GetSeatId(), s.optionID)
	}
	if _, sold := s.sold[seat.ID]; sold {
		return nil, messages.Reject(messages.CodeSeatUnavailable, "seat %d is sold", seat.ID)
	}
	if _, taken := s.holder[seat.ID]; taken {
		return nil, messages.Reject(messages.CodeSeatUnavailable, "seat %d is held by another reservation", seat.ID)
	}
	if limit > 0 && s.userHeld[c.GetUserId()] >= limit {
		return nil, messages.Reject(messages.CodeHoldLimit, "user %d already holds %d seats on concert date %d",
			c.GetUserId(), s.userHeld[c.GetUserId()], s.optionID)
	}
	nowMs := now.UnixMilli()
	return &messages.SeatHeld{
		ReservationId: ReservationID(s.optionID, s.nextNo),
		SeatId:        seat.ID,
		UserId:        c.GetUserId(),
		Price:         seat.Price,
		HeldAtMs:      nowMs,
		ExpiresAtMs:   now.Add(ttl).UnixMilli(),
	}, nil
}

// decideCancel cancels a hold. Cancelling a cancelled reservation again
// returns no event and no rejection: the caller answers it as it is.
func decideCancel(s *seatState, c *messages.CancelReservation, now time.Time) (proto.Message, *messages.Rejection) {
	r := s.reservations[c.GetReservationId()]
	if r == nil {
		return nil, rejectNoReservation(c.GetReservationId())
	}
	if r.UserId != c.GetUserId() {
		return nil, rejectOtherUser(r.Id)
	}
	switch r.Status {
	case messages.ReservationStatus_RESERVATION_HELD:
		if r.Paying {
			return nil, messages.Reject(messages.CodePaymentInProgress, "reservation %d is being paid", r.Id)
		}
		return &messages.HoldCancelled{ReservationId: r.Id, AtMs: now.UnixMilli()}, nil
	case messages.ReservationStatus_RESERVATION_CONFIRMED:
		return nil, messages.Reject(messages.CodeAlreadyPaid, "reservation %d is paid", r.Id)
	case messages.ReservationStatus_RESERVATION_EXPIRED:
		return nil, rejectHoldExpired(r.Id)
	default: // cancelled: idempotent
		return nil, nil
	}
}

// payAction is what the actor does with a PayReservation.
type payAction int

const (
	payReject payAction = iota // answer the rejection
	payStart                   // persist PaymentStarted, then debit
	payJoin                    // wait for the payment in flight
	payDone                    // answer the confirmed reservation again
)

// decidePay validates a payment: it returns the PaymentStarted event to
// persist (payStart), or what else to do.
func decidePay(s *seatState, c *messages.PayReservation, now time.Time) (payAction, *messages.PaymentStarted, *messages.Rejection) {
	r := s.reservations[c.GetReservationId()]
	if r == nil {
		return payReject, nil, rejectNoReservation(c.GetReservationId())
	}
	if r.UserId != c.GetUserId() {
		return payReject, nil, rejectOtherUser(r.Id)
	}
	key := c.GetIdempotencyKey()
	switch r.Status {
	case messages.ReservationStatus_RESERVATION_CONFIRMED:
		if key != "" && key == r.IdempotencyKey && c.GetAmount() == r.PaidAmount {
			return payDone, nil, nil
		}
		return payReject, nil, messages.Reject(messages.CodeAlreadyPaid, "reservation %d is paid", r.Id)
	case messages.ReservationStatus_RESERVATION_CANCELLED:
		return payReject, nil, messages.Reject(messages.CodeReservationCancelled, "reservation %d is cancelled", r.Id)
	case messages.ReservationStatus_RESERVATION_EXPIRED:
		return payReject, nil, rejectHoldExpired(r.Id)
	}
	if isDue(r, now.UnixMilli()) {
		return payReject, nil, rejectHoldExpired(r.Id) // the caller expires it first; see dueExpiries
	}
	if c.GetAmount() != r.Price {
		return payReject, nil, messages.Reject(messages.CodeAmountMismatch, "amount %d is not the price %d", c.GetAmount(), r.Price)
	}
	if r.Paying {
		if key != "" && key == r.IdempotencyKey {
			return payJoin, nil, nil
		}
		return payReject, nil, messages.Reject(messages.CodePaymentInProgress, "reservation %d is being paid", r.Id)
	}
	return payStart, &messages.PaymentStarted{ReservationId: r.Id, Amount: c.GetAmount(), IdempotencyKey: key, AtMs: now.UnixMilli()}, nil
}

// freeSeats lists the seats without a HELD or CONFIRMED reservation, by
// seat number.
func freeSeats(s *seatState, cat *seatCatalog) []int64 {
	free := []int64{}
	if cat == nil {
		return free
	}
	for _, id := range cat.order {
		_, taken := s.holder[id]
		_, sold := s.sold[id]
		if !taken && !sold {
			free = append(free, id)
		}
	}
	return free
}

func rejectNoReservation(id int64) *messages.Rejection {
	return messages.Reject(messages.CodeReservationNotFound, "reservation %d not found", id)
}

func rejectOtherUser(id int64) *messages.Rejection {
	return messages.Reject(messages.CodeTokenUserMismatch, "reservation %d belongs to another user", id)
}

func rejectHoldExpired(id int64) *messages.Rejection {
	return messages.Reject(messages.CodeHoldExpired, "the hold of reservation %d has expired", id)
}
