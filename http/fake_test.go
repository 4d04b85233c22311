package http

import (
	"context"
	"time"

	"github.com/concert/ticketing/booking"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// fakeBooking answers every call with err, or with a fixed value when err is
// nil. It records the last call's name (and key) for assertions.
type fakeBooking struct {
	err  error
	last string
	key  string // the Idempotency-Key of the last Charge or Pay
	// entered, when set, receives one value as Charge starts; Charge then
	// waits for release (when set).
	entered chan struct{}
	release chan struct{}
}

var _ Booking = (*fakeBooking)(nil)

func (f *fakeBooking) call(name string) error { f.last = name; return f.err }

func (f *fakeBooking) CreateUser(_ context.Context, name string) (persistence.User, error) {
	return persistence.User{ID: 1, Name: name, CreatedAt: time.UnixMilli(1)}, f.call("CreateUser")
}

func (f *fakeBooking) IssueToken(context.Context, int64) (*messages.Token, error) {
	return &messages.Token{Id: 1, UserId: 1, Token: "t", Status: messages.TokenStatus_TOKEN_ACTIVE}, f.call("IssueToken")
}

func (f *fakeBooking) Token(context.Context, string) (*messages.Token, error) {
	return &messages.Token{Id: 1, UserId: 1, Token: "t", Status: messages.TokenStatus_TOKEN_WAIT, Position: 3}, f.call("Token")
}

func (f *fakeBooking) Concerts(context.Context) ([]persistence.Concert, error) {
	return []persistence.Concert{{ID: 1, Title: "x"}}, f.call("Concerts")
}

func (f *fakeBooking) AvailableDates(context.Context, int64) ([]booking.DateAvailability, error) {
	return nil, f.call("AvailableDates")
}

func (f *fakeBooking) AvailableSeats(_ context.Context, concertID int64, day time.Time) (booking.SeatAvailability, error) {
	return booking.SeatAvailability{Option: persistence.ConcertOption{ID: 2, ConcertID: concertID, Date: day}}, f.call("AvailableSeats")
}

func (f *fakeBooking) CreateConcert(_ context.Context, title string, dates []time.Time, seats int, price int64) (persistence.Concert, []persistence.ConcertOption, error) {
	opts := make([]persistence.ConcertOption, len(dates))
	for i, d := range dates {
		opts[i] = persistence.ConcertOption{ID: int64(i + 1), ConcertID: 1, Date: d, Seats: seats}
	}
	return persistence.Concert{ID: 1, Title: title, Price: price}, opts, f.call("CreateConcert")
}

func (f *fakeBooking) Hold(context.Context, string, int64, int64) (*messages.Reservation, error) {
	return &messages.Reservation{Id: 1, Status: messages.ReservationStatus_RESERVATION_HELD}, f.call("Hold")
}

func (f *fakeBooking) Reservation(context.Context, string, int64) (*messages.Reservation, error) {
	return &messages.Reservation{Id: 1}, f.call("Reservation")
}

func (f *fakeBooking) Cancel(context.Context, string, int64) (*messages.Reservation, error) {
	return &messages.Reservation{Id: 1}, f.call("Cancel")
}

func (f *fakeBooking) Balance(context.Context, int64) (int64, error) { return 5, f.call("Balance") }

func (f *fakeBooking) Charge(_ context.Context, _, _ int64, key string) (int64, error) {
	f.key = key
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.release != nil {
		<-f.release
	}
	return 5, f.call("Charge")
}

func (f *fakeBooking) Pay(_ context.Context, _ string, _, _ int64, key string) (booking.Receipt, error) {
	f.key = key
	return booking.Receipt{ReservationID: 1, Amount: 1}, f.call("Pay")
}

func (f *fakeBooking) QueueSizes() (int, int) { return 2, 1 }
