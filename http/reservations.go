package http

import "github.com/gofiber/fiber/v2"

// hold: POST /reservations {"userId", "seatId"} (Bearer) → 200 reservation.
func (h *handlers) hold(c *fiber.Ctx) error {
	f, err := object(c)
	if err != nil {
		return err
	}
	userID, err := f.id("userId")
	if err != nil {
		return err
	}
	seatID, err := f.id("seatId")
	if err != nil {
		return err
	}
	token, err := bearer(c)
	if err != nil {
		return err
	}
	r, err := h.b.Hold(c.UserContext(), token, userID, seatID)
	if err != nil {
		return err
	}
	return c.JSON(viewReservation(r))
}

// getReservation: GET /reservations/:id (Bearer) → 200 reservation.
func (h *handlers) getReservation(c *fiber.Ctx) error {
	id, err := pathID("id", c.Params("id"))
	if err != nil {
		return err
	}
	token, err := bearer(c)
	if err != nil {
		return err
	}
	r, err := h.b.Reservation(c.UserContext(), token, id)
	if err != nil {
		return err
	}
	return c.JSON(viewReservation(r))
}

// cancelReservation: DELETE /reservations/:id (Bearer) → 200 reservation.
func (h *handlers) cancelReservation(c *fiber.Ctx) error {
	id, err := pathID("id", c.Params("id"))
	if err != nil {
		return err
	}
	token, err := bearer(c)
	if err != nil {
		return err
	}
	r, err := h.b.Cancel(c.UserContext(), token, id)
	if err != nil {
		return err
	}
	return c.JSON(viewReservation(r))
}
