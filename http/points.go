package http

import "github.com/gofiber/fiber/v2"

// getPoints: GET /customers/point?userId= → 200 {"userId", "balance"}.
func (h *handlers) getPoints(c *fiber.Ctx) error {
	userID, err := pathID("userId", c.Query("userId"))
	if err != nil {
		return err
	}
	balance, err := h.b.Balance(c.UserContext(), userID)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"userId": userID, "balance": balance})
}

// chargePoints: PATCH /customers/point {"userId", "chargeBalance"}
// (optional Idempotency-Key) → 200 {"userId", "balance"}. The service
// bounds chargeBalance (INVALID_AMOUNT); a charge repeated with its key
// answers the first charge's result.
func (h *handlers) chargePoints(c *fiber.Ctx) error {
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	f, err := object(c)
	if err != nil {
		return err
	}
	userID, err := f.id("userId")
	if err != nil {
		return err
	}
	amount, err := f.amount("chargeBalance")
	if err != nil {
		return err
	}
	balance, err := h.b.Charge(c.UserContext(), userID, amount, key)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"userId": userID, "balance": balance})
}
