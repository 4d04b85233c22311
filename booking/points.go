package booking

import (
	"context"

	"github.com/concert/ticketing/actors"
	"github.com/concert/ticketing/messages"
)

// Balance returns a user's point balance. USER_NOT_FOUND.
func (s *Service) Balance(ctx context.Context, userID int64) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.userExists(ctx, userID); err != nil {
		return 0, err
	}
	w, err := walletOf(s.router.Request(ctx, kindWallet, id(userID), &messages.GetBalance{UserId: userID}))
	if err != nil {
		return 0, err
	}
	return w.GetBalance(), nil
}

// Charge adds amount (1..actors.MaxCharge) to a user's balance and returns
// the new balance. INVALID_AMOUNT, USER_NOT_FOUND, BALANCE_LIMIT.
//
// key is the optional Idempotency-Key ("" for none), already checked by
// the caller (valid UTF-8 without NUL, as proto3 and the journal need). The
// wallet answers a charge repeated with its key with the first charge's
// result, and IDEMPOTENCY_KEY_REUSED when the key was used for another
// amount.
func (s *Service) Charge(ctx context.Context, userID, amount int64, key string) (int64, error) {
	if amount < 1 || amount > actors.MaxCharge {
		return 0, messages.Reject(messages.CodeInvalidAmount, "chargeBalance must be between 1 and %d", int64(actors.MaxCharge))
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.userExists(ctx, userID); err != nil {
		return 0, err
	}
	w, err := walletOf(s.router.Request(ctx, kindWallet, id(userID), &messages.ChargePoints{
		UserId: userID, Amount: amount, IdempotencyKey: key,
	}))
	if err != nil {
		return 0, err
	}
	return w.GetBalance(), nil
}
