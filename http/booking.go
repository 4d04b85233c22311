package http

import (
	"context"
	"time"

	"github.com/concert/ticketing/booking"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// Booking is the application service the handlers call; *booking.Service
// implements it. Domain refusals come back as *messages.Rejection errors;
// every other error is mapped by statusOf. Implementations must be safe for
// concurrent use; token strings are passed as received (empty when absent).
type Booking interface {
	CreateUser(ctx context.Context, name string) (persistence.User, error)
	IssueToken(ctx context.Context, userID int64) (*messages.Token, error)
	Token(ctx context.Context, token string) (*messages.Token, error)

	Concerts(ctx context.Context) ([]persistence.Concert, error)
	AvailableDates(ctx context.Context, concertID int64) ([]booking.DateAvailability, error)
	AvailableSeats(ctx context.Context, concertID int64, day time.Time) (booking.SeatAvailability, error)
	CreateConcert(ctx context.Context, title string, dates []time.Time, seatsPerDate int, price int64) (persistence.Concert, []persistence.ConcertOption, error)

	Hold(ctx context.Context, token string, userID, seatID int64) (*messages.Reservation, error)
	Reservation(ctx context.Context, token string, reservationID int64) (*messages.Reservation, error)
	Cancel(ctx context.Context, token string, reservationID int64) (*messages.Reservation, error)

	Balance(ctx context.Context, userID int64) (int64, error)
	// Charge adds amount to the user's balance; key is the optional
	// Idempotency-Key ("" for none), checked by text.
	Charge(ctx context.Context, userID, amount int64, key string) (int64, error)

	// Pay pays a held reservation; key as for Charge.
	Pay(ctx context.Context, token string, reservationID, amount int64, key string) (booking.Receipt, error)

	// QueueSizes reports the tokens waiting in line and the active ones.
	QueueSizes() (waiting, active int)
}

var _ Booking = (*booking.Service)(nil)
