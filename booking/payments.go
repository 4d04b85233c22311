package booking

import (
	"context"
	"time"

	"github.com/concert/ticketing/messages"
)

// Receipt is the answer to a payment. The payment id is the reservation id.
type Receipt struct {
	ReservationID int64
	Amount        int64
	// Balance is the wallet's balance right after the debit.
	Balance int64
	PaidAt  time.Time
}

// Pay pays a held reservation of the token's user with amount points: the
// seat actor runs the payment saga (debit, then confirm), then the user's
// token is expired.
//
// With an idempotency key, a payment already recorded under that key is
// answered again instead of being made (IDEMPOTENCY_KEY_REUSED when it was
// for another reservation or amount); such a retry is accepted with the
// token the first payment expired. Its answer still comes from the seat
// actor, once the saga has confirmed the reservation: the wallet's record
// of the debit alone is the saga's middle, and a 200 resting on it could be
// followed by a read of the reservation still HELD.
func (s *Service) Pay(ctx context.Context, token string, reservationID, amount int64, key string) (Receipt, error) {
	if amount < 1 {
		return Receipt{}, messages.Reject(messages.CodeInvalidAmount, "amount must be positive")
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	mode := activeOnly
	if key != "" {
		mode = orPaid
	}
	chk, err := s.authorize(ctx, token, mode)
	if err != nil {
		return Receipt{}, err
	}
	retry := false
	if key != "" {
		if retry, err = s.recorded(ctx, chk.UserID, key, reservationID, amount); err != nil {
			return Receipt{}, err
		}
	}
	if !retry && chk.Status != messages.TokenStatus_TOKEN_ACTIVE {
		return Receipt{}, messages.Reject(messages.CodeTokenInvalid, "token has expired")
	}
	optionID, err := s.optionOf(ctx, reservationID)
	if err != nil {
		return Receipt{}, err
	}
	// The seat actor checks the reservation's user, and answers a retry
	// racing the first payment with that payment's outcome.
	r, err := reservationOf(s.router.Request(ctx, kindSeat, id(optionID), &messages.PayReservation{
		ReservationId: reservationID, UserId: chk.UserID, Amount: amount, IdempotencyKey: key,
	}))
	if err != nil {
		return Receipt{}, err
	}
	// A keyed retry of a recorded payment changes nothing: the token it
	// carries may be the user's new one, issued after the first payment
	// expired the old (as before the retry was answered by the seat).
	if !retry && chk.Status == messages.TokenStatus_TOKEN_ACTIVE {
		s.settle(ctx, func(ctx context.Context) { s.expireToken(ctx, token) })
	}
	return Receipt{
		ReservationID: r.GetId(),
		Amount:        r.GetPaidAmount(),
		Balance:       r.GetBalanceAfter(),
		PaidAt:        time.UnixMilli(r.GetPaidAtMs()).UTC(),
	}, nil
}

// recorded reports whether the user's wallet recorded a payment under key
// for this reservation and amount — a retry — or refuses with
// IDEMPOTENCY_KEY_REUSED when the key was used for another payment.
func (s *Service) recorded(ctx context.Context, userID int64, key string, reservationID, amount int64) (bool, error) {
	w, err := walletOf(s.router.Request(ctx, kindWallet, id(userID),
		&messages.LookupPayment{UserId: userID, IdempotencyKey: key}))
	if err != nil {
		return false, err
	}
	p := w.GetPayment()
	if p == nil {
		return false, nil
	}
	if p.GetReservationId() != reservationID || p.GetAmount() != amount {
		return false, messages.Reject(messages.CodeIdempotencyKeyReused,
			"idempotency key was used for another payment (reservation %d)", p.GetReservationId())
	}
	return true, nil
}

// expireToken ends the token of a user who paid. The payment is durable
// already, so a failure here is only logged: the token then expires by
// idleness. Run it with settle.
func (s *Service) expireToken(ctx context.Context, token string) {
	reply, err := s.router.Request(ctx, kindQueue, queueID, &messages.ExpireToken{Token: token, Reason: "paid"})
	if tr, ok := reply.(*messages.TokenResult); ok && tr.GetRejection() != nil {
		err = tr.GetRejection()
	}
	if err != nil {
		s.log.Warn("expire token after payment", "err", err)
	}
}
