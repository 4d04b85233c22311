package booking

import (
	"context"
	"errors"
	"testing"

	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// countingSeats is a Catalog of one date (option 9) of three seats, 1..3,
// that counts its seat queries; failSeats makes the date's listing fail.
type countingSeats struct {
	Catalog
	seat, seats int
	failSeats   bool
}

func (c *countingSeats) Seat(_ context.Context, id int64) (persistence.Seat, error) {
	c.seat++
	if id < 1 || id > 3 {
		return persistence.Seat{}, persistence.ErrNotFound
	}
	return persistence.Seat{ID: id, OptionID: 9, ConcertID: 1, SeatNo: int(id), Price: 100}, nil
}

func (c *countingSeats) Seats(_ context.Context, optionID int64) ([]persistence.Seat, error) {
	c.seats++
	if c.failSeats || optionID != 9 {
		return nil, errors.New("catalog down")
	}
	return []persistence.Seat{
		{ID: 1, OptionID: 9, ConcertID: 1, SeatNo: 1, Price: 100},
		{ID: 2, OptionID: 9, ConcertID: 1, SeatNo: 2, Price: 100},
		{ID: 3, OptionID: 9, ConcertID: 1, SeatNo: 3, Price: 100},
	}, nil
}

// TestSeatReadWarmsItsDate: the first seat read of a date caches the whole
// date, so holding its other seats costs no query; an unknown seat is
// SEAT_NOT_FOUND; when the date cannot be listed the seat read still
// succeeds and the next seat is read alone.
func TestSeatReadWarmsItsDate(t *testing.T) {
	ctx := context.Background()
	c := &countingSeats{}
	s := New(Config{Catalog: c})
	for id := int64(1); id <= 3; id++ {
		seat, err := s.seat(ctx, id)
		if err != nil || seat.SeatNo != int(id) || seat.OptionID != 9 {
			t.Fatalf("seat(%d) = %+v, %v", id, seat, err)
		}
	}
	if c.seat != 1 || c.seats != 1 {
		t.Fatalf("3 seats of one date read with %d seat and %d date queries, want 1 and 1", c.seat, c.seats)
	}
	_, err := s.seat(ctx, 4)
	var rej *messages.Rejection
	if !errors.As(err, &rej) || rej.GetCode() != messages.CodeSeatNotFound {
		t.Fatalf("seat(4) = %v, want SEAT_NOT_FOUND", err)
	}

	c = &countingSeats{failSeats: true}
	s = New(Config{Catalog: c})
	for _, id := range []int64{1, 1, 2} {
		if _, err := s.seat(ctx, id); err != nil {
			t.Fatalf("seat(%d) with the date unlisted: %v", id, err)
		}
	}
	if c.seat != 2 {
		t.Fatalf("seat queries = %d, want 2 (seat 1 cached alone, then seat 2)", c.seat)
	}
}
