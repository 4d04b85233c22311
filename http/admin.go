package http

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/concert/ticketing/actors"
	"github.com/concert/ticketing/messages"
)

// Bounds of an admin-created concert.
const (
	maxDates            = 366
	defaultSeatsPerDate = 50
	maxSeatsPerDate     = 1000
	// minPrice: a payment must be positive (the contract refuses zero
	// amounts), so a free seat could be held but never paid.
	minPrice = 1
	maxPrice = actors.MaxBalance // a dearer seat could never be paid
)

// requireAdmin lets a request through only with the configured X-Admin-Key.
// The key is compared in constant time over equal-length SHA-256 digests,
// so neither its content nor its length leaks through timing.
func (h *handlers) requireAdmin(c *fiber.Ctx) error {
	key, err := headerText(c, "X-Admin-Key", maxAdminKeyLen)
	if err != nil {
		return err
	}
	got := sha256.Sum256([]byte(key))
	if key == "" || subtle.ConstantTimeCompare(got[:], h.adminKeyDigest[:]) != 1 {
		return messages.Reject(messages.CodeAdminKeyInvalid, "missing or wrong X-Admin-Key")
	}
	return c.Next()
}

// createConcert: POST /admin/concerts {"title", "dates", "seatsPerDate",
// "price"} → 201 {"id", "title", "price", "dates": [{"concertOptionId",
// "concertDate", "seats"}]}.
func (h *handlers) createConcert(c *fiber.Ctx) error {
	f, err := object(c)
	if err != nil {
		return err
	}
	title, err := f.text("title", maxTitleLen)
	if err != nil {
		return err
	}
	dates, err := concertDates(f)
	if err != nil {
		return err
	}
	seats := int64(defaultSeatsPerDate)
	if _, present := f.raw("seatsPerDate"); present {
		if seats, err = f.integer("seatsPerDate"); err != nil || seats < 1 || seats > maxSeatsPerDate {
			return invalid("seatsPerDate must be an integer from 1 to %d", maxSeatsPerDate)
		}
	}
	price, err := f.integer("price")
	if errors.Is(err, errMissing) {
		return invalid("price is required")
	}
	if err != nil || price < minPrice || price > maxPrice {
		return invalid("price must be an integer from %d to %d", minPrice, int64(maxPrice))
	}

	k, opts, err := h.b.CreateConcert(c.UserContext(), title, dates, int(seats), price)
	if err != nil {
		return err
	}
	out := make([]fiber.Map, len(opts))
	for i, o := range opts {
		out[i] = fiber.Map{"concertOptionId": o.ID, "concertDate": o.Date.Format(time.DateOnly), "seats": o.Seats}
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"id": k.ID, "title": k.Title, "price": k.Price, "dates": out})
}

// concertDates parses "dates": 1..maxDates distinct YYYY-MM-DD strings.
func concertDates(f fields) ([]time.Time, error) {
	list, err := f.strings("dates")
	if err != nil {
		return nil, err
	}
	if len(list) == 0 || len(list) > maxDates {
		return nil, invalid("dates must hold 1 to %d dates", maxDates)
	}
	seen := make(map[time.Time]bool, len(list))
	dates := make([]time.Time, len(list))
	for i, s := range list {
		if err := text("dates", s, maxParamLen); err != nil {
			return nil, err
		}
		d, err := time.Parse(time.DateOnly, s)
		if err != nil || d.Format(time.DateOnly) != s {
			return nil, invalid("date %q must be YYYY-MM-DD", s)
		}
		if seen[d] {
			return nil, invalid("date %s is listed twice", s)
		}
		seen[d] = true
		dates[i] = d
	}
	return dates, nil
}
