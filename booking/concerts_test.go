package booking

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// countingSeats is a Catalog of one date (option 9) of three seats, 1..3,
// that counts its seat queries; failSeats makes the date's listing fail.
type countingSeats struct {
	Catalog
	mu          sync.Mutex
	seat, seats int
	failSeats   bool
	listing     chan struct{} // if set, Seats waits for it to close
}

func (c *countingSeats) Seat(_ context.Context, id int64) (persistence.Seat, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seat++
	if id < 1 || id > 3 {
		return persistence.Seat{}, persistence.ErrNotFound
	}
	return persistence.Seat{ID: id, OptionID: 9, ConcertID: 1, SeatNo: int(id), Price: 100}, nil
}

func (c *countingSeats) Seats(_ context.Context, optionID int64) ([]persistence.Seat, error) {
	if c.listing != nil {
		<-c.listing
	}
	c.mu.Lock()
	defer c.mu.Unlock()
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

// TestSeatReadAfterTheSeatCacheStartedOver: when the seat cache starts over
// (it is full) while the date's listing is still cached, the next seat read
// of that date puts the date's seats back, so the reads after it cost no
// query (a review found every later read querying again).
func TestSeatReadAfterTheSeatCacheStartedOver(t *testing.T) {
	ctx := context.Background()
	c := &countingSeats{}
	s := New(Config{Catalog: c})
	if _, err := s.seat(ctx, 1); err != nil {
		t.Fatal(err)
	}
	s.seats.mu.Lock()
	clear(s.seats.m)
	s.seats.mu.Unlock()
	for range 5 {
		if _, err := s.seat(ctx, 2); err != nil {
			t.Fatal(err)
		}
	}
	if c.seat != 2 || c.seats != 1 {
		t.Fatalf("%d seat and %d date queries, want 2 and 1", c.seat, c.seats)
	}
}

// TestColdDateListedOnce: many first reads of a date at once (an on-sale's
// start) list it once, and all get their seat.
func TestColdDateListedOnce(t *testing.T) {
	ctx := context.Background()
	c := &countingSeats{listing: make(chan struct{})}
	s := New(Config{Catalog: c})
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := int64(i%3 + 1)
			seat, err := s.seat(ctx, id)
			if err == nil && seat.ID != id {
				err = fmt.Errorf("seat(%d) = %+v", id, seat)
			}
			errs <- err
		}()
	}
	// Let every reader reach the listing (or the cache) before it returns.
	for {
		c.mu.Lock()
		n := c.seat
		c.mu.Unlock()
		if n == 50 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(c.listing)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if c.seats != 1 {
		t.Fatalf("the date was listed %d times, want once", c.seats)
	}
}
