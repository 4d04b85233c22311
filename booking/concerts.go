package booking

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// DateAvailability is one bookable date of a concert.
type DateAvailability struct {
	Option persistence.ConcertOption
	// Free is the number of free seats (at least 1).
	Free int
}

// SeatAvailability is the free seats of one date, ordered by seat number.
type SeatAvailability struct {
	Option persistence.ConcertOption
	Seats  []persistence.Seat
}

// Concerts lists the concerts.
func (s *Service) Concerts(ctx context.Context) ([]persistence.Concert, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return s.catalog.Concerts(ctx)
}

// adminCreateTimeout bounds creating a concert, whatever the request
// timeout of the fan path.
const adminCreateTimeout = 2 * time.Minute

// CreateConcert creates a concert with one option per date and seatsPerDate
// seats per option at price. The caller has validated the input.
func (s *Service) CreateConcert(ctx context.Context, title string, dates []time.Time, seatsPerDate int, price int64) (persistence.Concert, []persistence.ConcertOption, error) {
	// Not bound by the request timeout of the fan path: a year-long venue
	// (366 × 1,000 seats) is one transaction of a few seconds
	// (BenchmarkCreateLargeVenue), and an admin waits for it.
	ctx, cancel := context.WithTimeout(ctx, max(s.timeout, adminCreateTimeout))
	defer cancel()
	return s.catalog.CreateConcert(ctx, title, dates, seatsPerDate, price)
}

// AvailableDates lists the dates of a concert, from today (UTC) on, that
// still have a free seat. The seat actors of the dates are asked
// concurrently. CONCERT_NOT_FOUND for an unknown concert.
func (s *Service) AvailableDates(ctx context.Context, concertID int64) ([]DateAvailability, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	opts, err := s.concertOptions(ctx, concertID)
	if err != nil {
		return nil, err
	}
	today := s.now().UTC().Truncate(24 * time.Hour)
	upcoming := slices.DeleteFunc(slices.Clone(opts), func(o persistence.ConcertOption) bool {
		return o.Date.Before(today)
	})

	free := make([]int, len(upcoming))
	errs := make([]error, len(upcoming))
	var wg sync.WaitGroup
	for i, o := range upcoming {
		wg.Go(func() {
			a, err := availabilityOf(s.router.Request(ctx, kindSeat, id(o.ID), &messages.GetAvailability{}))
			free[i], errs[i] = len(a.GetFreeSeatIds()), err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := []DateAvailability{}
	for i, o := range upcoming {
		if free[i] > 0 {
			out = append(out, DateAvailability{Option: o, Free: free[i]})
		}
	}
	return out, nil
}

// AvailableSeats lists the free seats of the concert's date day (a UTC
// calendar date). CONCERT_NOT_FOUND, DATE_NOT_FOUND.
func (s *Service) AvailableSeats(ctx context.Context, concertID int64, day time.Time) (SeatAvailability, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	opts, err := s.concertOptions(ctx, concertID)
	if err != nil {
		return SeatAvailability{}, err
	}
	i := slices.IndexFunc(opts, func(o persistence.ConcertOption) bool { return o.Date.Equal(day) })
	if i < 0 {
		return SeatAvailability{}, messages.Reject(messages.CodeDateNotFound,
			"concert %d has no date %s", concertID, day.Format(time.DateOnly))
	}
	opt := opts[i]
	a, err := availabilityOf(s.router.Request(ctx, kindSeat, id(opt.ID), &messages.GetAvailability{}))
	if err != nil {
		return SeatAvailability{}, err
	}
	seats, err := s.optionSeats(ctx, opt.ID)
	if err != nil {
		return SeatAvailability{}, err
	}
	out := SeatAvailability{Option: opt, Seats: make([]persistence.Seat, 0, len(a.GetFreeSeatIds()))}
	for _, sid := range a.GetFreeSeatIds() {
		if seat, ok := seats[sid]; ok {
			out.Seats = append(out.Seats, seat)
		}
	}
	slices.SortFunc(out.Seats, func(a, b persistence.Seat) int { return a.SeatNo - b.SeatNo })
	return out, nil
}

// concertOptions returns the dates of an existing concert. A concert's
// dates are created with it and never change, so they are cached.
func (s *Service) concertOptions(ctx context.Context, concertID int64) ([]persistence.ConcertOption, error) {
	if opts, ok := s.concerts.get(concertID); ok {
		return opts, nil
	}
	if _, err := s.catalog.Concert(ctx, concertID); err != nil {
		if errors.Is(err, persistence.ErrNotFound) {
			return nil, messages.Reject(messages.CodeConcertNotFound, "concert %d not found", concertID)
		}
		return nil, err
	}
	opts, err := s.catalog.Options(ctx, concertID)
	if err != nil {
		return nil, err
	}
	s.concerts.put(concertID, opts)
	return opts, nil
}

// optionSeats returns the seats of an option by id (immutable, cached).
// One load per date runs at a time, on a context of its own (a waiter's
// cancellation must not fail the others): at an on-sale's start, every
// fan's first hold of a cold date would otherwise list the whole date.
func (s *Service) optionSeats(ctx context.Context, optionID int64) (map[int64]persistence.Seat, error) {
	if m, ok := s.seatList.get(optionID); ok {
		return m, nil
	}
	v, err, _ := s.seatLoads.Do(strconv.FormatInt(optionID, 10), func() (any, error) {
		if m, ok := s.seatList.get(optionID); ok {
			return m, nil
		}
		lctx, cancel := s.detached(ctx)
		defer cancel()
		list, err := s.catalog.Seats(lctx, optionID)
		if err != nil {
			return nil, err
		}
		m := make(map[int64]persistence.Seat, len(list))
		for _, seat := range list {
			m[seat.ID] = seat
		}
		s.seatList.put(optionID, m)
		// A client holds the seats it was just shown: without this, each
		// hold of a seat not held before would cost a catalog query (issue
		// 8's on-sale profile: 60% of booking's hold path).
		s.seats.putAll(m)
		return m, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(map[int64]persistence.Seat), nil
}

// seat returns a seat by id (immutable, cached). SEAT_NOT_FOUND.
func (s *Service) seat(ctx context.Context, seatID int64) (persistence.Seat, error) {
	if seat, ok := s.seats.get(seatID); ok {
		return seat, nil
	}
	seat, err := s.catalog.Seat(ctx, seatID)
	if err != nil {
		if errors.Is(err, persistence.ErrNotFound) {
			return persistence.Seat{}, messages.Reject(messages.CodeSeatNotFound, "seat %d not found", seatID)
		}
		return persistence.Seat{}, err
	}
	// Cache the whole date: in an on-sale its other seats are held next,
	// by fans who never listed them (issue 8's fresh-holds profile: a
	// query per hold was 14 % of the server's CPU). A failure here only
	// means the next seat is read alone.
	m, err := s.optionSeats(ctx, seat.OptionID)
	if err != nil {
		s.seats.put(seatID, seat)
	} else if _, ok := s.seats.get(seatID); !ok {
		// The date was listed before the seat cache last started over:
		// its seats go back in.
		s.seats.putAll(m)
	}
	return seat, nil
}
