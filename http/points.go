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

// chargePoints: PATCH /customers/point {"userId", "chargeBalance"} →
// 200 {"userId", "balance"}. The service bounds chargeBalance (INVALID_AMOUNT).
func (h *handlers) chargePoints(c *fiber.Ctx) error {
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
	balance, err := h.b.Charge(c.UserContext(), userID, amount)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"userId": userID, "balance": balance})
}
