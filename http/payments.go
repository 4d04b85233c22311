package http

import (
	"strings"

	"github.com/gofiber/fiber/v2"
)

// maxIdempotencyKeyLen bounds the Idempotency-Key header.
const maxIdempotencyKeyLen = 255

// pay: POST /payments {"reservationId", "amount"} (Bearer, optional
// Idempotency-Key) → 200 {"id", "reservation_id", "amount", "paymentDate",
// "balance"}.
func (h *handlers) pay(c *fiber.Ctx) error {
	// A copy: the key is journaled with the payment.
	key := strings.Clone(c.Get("Idempotency-Key"))
	if len(key) > maxIdempotencyKeyLen {
		return invalid("Idempotency-Key must be at most %d characters", maxIdempotencyKeyLen)
	}
	f, err := object(c)
	if err != nil {
		return err
	}
	reservationID, err := f.id("reservationId")
	if err != nil {
		return err
	}
	amount, err := f.amount("amount")
	if err != nil {
		return err
	}
	rc, err := h.b.Pay(c.UserContext(), bearer(c), reservationID, amount, key)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{
		"id":             rc.ReservationID,
		"reservation_id": rc.ReservationID,
		"amount":         rc.Amount,
		"paymentDate":    stamp(rc.PaidAt),
		"balance":        rc.Balance,
	})
}
