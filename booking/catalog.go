package booking

import (
	"context"
	"time"

	"github.com/concert/ticketing/persistence"
)

// Catalog is the part of the catalog the service reads and writes.
// Implementations must be safe for concurrent use. Look-ups of a missing row
// return an error wrapping persistence.ErrNotFound; a store that cannot be
// reached yields errors wrapping persistence.ErrUnavailable. Options and Seats
// of an unknown id are empty, not an error.
type Catalog interface {
	CreateUser(ctx context.Context, name string) (persistence.User, error)
	User(ctx context.Context, id int64) (persistence.User, error)
	Concerts(ctx context.Context) ([]persistence.Concert, error)
	Concert(ctx context.Context, id int64) (persistence.Concert, error)
	Options(ctx context.Context, concertID int64) ([]persistence.ConcertOption, error)
	Option(ctx context.Context, optionID int64) (persistence.ConcertOption, error)
	Seats(ctx context.Context, optionID int64) ([]persistence.Seat, error)
	Seat(ctx context.Context, seatID int64) (persistence.Seat, error)
	CreateConcert(ctx context.Context, title string, dates []time.Time, seatsPerDate int, price int64) (persistence.Concert, []persistence.ConcertOption, error)
}
