package http

import "github.com/gofiber/fiber/v2"

// pay: POST /payments {"reservationId", "amount"} (Bearer, optional
// Idempotency-Key) → 200 {"id", "reservation_id", "amount", "paymentDate",
// "balance"}.
func (h *handlers) pay(c *fiber.Ctx) error {
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	token, err := bearer(c)
	if err != nil {
		return err
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
	rc, err := h.b.Pay(c.UserContext(), token, reservationID, amount, key)
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
