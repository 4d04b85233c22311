package messages

import "fmt"

// Error makes a Rejection usable as a Go error, so a domain refusal travels
// through request-response code as an ordinary error and is matched with
// errors.As at the HTTP edge.
func (r *Rejection) Error() string {
	if r.GetMessage() == "" {
		return r.GetCode()
	}
	return r.GetCode() + ": " + r.GetMessage()
}

// Reject builds a Rejection with a formatted message.
func Reject(code, format string, args ...any) *Rejection {
	return &Rejection{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Stable machine codes of the contract (../shared/spec/API.md).
const (
	CodeInvalidRequest       = "INVALID_REQUEST"
	CodeUserNotFound         = "USER_NOT_FOUND"
	CodeTokenInvalid         = "TOKEN_INVALID"
	CodeTokenNotActive       = "TOKEN_NOT_ACTIVE"
	CodeTokenUserMismatch    = "TOKEN_USER_MISMATCH"
	CodeConcertNotFound      = "CONCERT_NOT_FOUND"
	CodeDateNotFound         = "DATE_NOT_FOUND"
	CodeAdminKeyInvalid      = "ADMIN_KEY_INVALID"
	CodeSeatUnavailable      = "SEAT_UNAVAILABLE"
	CodeSeatNotFound         = "SEAT_NOT_FOUND"
	CodeHoldLimit            = "HOLD_LIMIT"
	CodeInvalidAmount        = "INVALID_AMOUNT"
	CodeBalanceLimit         = "BALANCE_LIMIT"
	CodeAmountMismatch       = "AMOUNT_MISMATCH"
	CodeReservationNotFound  = "RESERVATION_NOT_FOUND"
	CodeHoldExpired          = "HOLD_EXPIRED"
	CodeAlreadyPaid          = "ALREADY_PAID"
	CodeInsufficientBalance  = "INSUFFICIENT_BALANCE"
	CodeIdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED"
	CodeReservationCancelled = "RESERVATION_CANCELLED"
	CodePaymentInProgress    = "PAYMENT_IN_PROGRESS"
	CodeStoreUnavailable     = "STORE_UNAVAILABLE"
	CodePayloadTooLarge      = "PAYLOAD_TOO_LARGE"
	CodeNotFound             = "NOT_FOUND"
	// The trusted-identity mode (booking.WithIdentity): the request carries
	// no identity from the gateway, or acts for another user than it.
	CodeIdentityRequired = "IDENTITY_REQUIRED"
	CodeIdentityMismatch = "IDENTITY_MISMATCH"
)
