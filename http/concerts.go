package http

import (
	"time"

	"github.com/gofiber/fiber/v2"
)

// listConcerts: GET /concerts → 200 [{"id", "title", "price", "createdAt"}].
func (h *handlers) listConcerts(c *fiber.Ctx) error {
	list, err := h.b.Concerts(c.UserContext())
	if err != nil {
		return err
	}
	out := make([]fiber.Map, len(list))
	for i, k := range list {
		out[i] = fiber.Map{"id": k.ID, "title": k.Title, "price": k.Price, "createdAt": stamp(k.CreatedAt)}
	}
	return c.JSON(out)
}

// availableDates: GET /concerts/:concertId/available-date →
// 200 [{"concertOptionId", "concertDate", "availableSeats"}].
func (h *handlers) availableDates(c *fiber.Ctx) error {
	concertID, err := pathID("concertId", c.Params("concertId"))
	if err != nil {
		return err
	}
	dates, err := h.b.AvailableDates(c.UserContext(), concertID)
	if err != nil {
		return err
	}
	out := make([]fiber.Map, len(dates))
	for i, d := range dates {
		out[i] = fiber.Map{
			"concertOptionId": d.Option.ID,
			"concertDate":     d.Option.Date.Format(time.DateOnly),
			"availableSeats":  d.Free,
		}
	}
	return c.JSON(out)
}

// availableSeats: GET /concerts/:concertId/available-seats?date=… →
// 200 [{"date": "YYYYMMDD", "concertId", "concertOptionId", "availableSeats",
// "seats": [{"seatId", "seatNo", "price"}]}].
func (h *handlers) availableSeats(c *fiber.Ctx) error {
	concertID, err := pathID("concertId", c.Params("concertId"))
	if err != nil {
		return err
	}
	day, err := parseQueryDate(c.Query("date"))
	if err != nil {
		return err
	}
	a, err := h.b.AvailableSeats(c.UserContext(), concertID, day)
	if err != nil {
		return err
	}
	seats := make([]fiber.Map, len(a.Seats))
	for i, s := range a.Seats {
		seats[i] = fiber.Map{"seatId": s.ID, "seatNo": s.SeatNo, "price": s.Price}
	}
	return c.JSON([]fiber.Map{{
		"date":            a.Option.Date.Format(compactDate),
		"concertId":       a.Option.ConcertID,
		"concertOptionId": a.Option.ID,
		"availableSeats":  len(seats),
		"seats":           seats,
	}})
}

// compactDate is the YYYYMMDD form of a date.
const compactDate = "20060102"

// parseQueryDate accepts YYYY-MM-DD or YYYYMMDD.
func parseQueryDate(s string) (time.Time, error) {
	if err := text("date", s, maxParamLen); err != nil {
		return time.Time{}, err
	}
	if s == "" {
		return time.Time{}, invalid("date is required (YYYY-MM-DD or YYYYMMDD)")
	}
	layout := time.DateOnly
	if len(s) == len(compactDate) {
		layout = compactDate
	}
	d, err := time.Parse(layout, s)
	if err != nil || d.Format(layout) != s {
		return time.Time{}, invalid("date %q must be YYYY-MM-DD or YYYYMMDD", s)
	}
	return d, nil
}
