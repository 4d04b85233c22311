package actors

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// TestSeatCatalogFailureBacksOff: while the catalog cannot be read, a seat
// actor refuses its commands STORE_UNAVAILABLE without asking the catalog
// again for each one (each ask may wait seatCatalogTimeout, with the actor's
// other messages queued behind it), and serves again once it is back.
func TestSeatCatalogFailureBacksOff(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{})
	before := h.catalog.fail(errors.Join(persistence.ErrUnavailable, errors.New("catalog down")))
	h.start()
	const reads = 200
	start := time.Now()
	for range reads {
		_, err := h.request("seat", stOption, &messages.GetAvailability{})
		require.Equal(t, messages.CodeStoreUnavailable, seatCode(err), "read while the catalog is down: %v", err)
	}
	// One load at the start, then at most one per backoff (100 ms and up).
	loads := h.catalog.fail(nil) - before
	require.LessOrEqual(t, loads, int(time.Since(start)/seatRetryMin)+2, "the catalog was asked for every command")
	require.Eventually(t, func() bool {
		res, err := h.request("seat", stOption, &messages.GetAvailability{})
		return err == nil && len(res.(*messages.SeatAvailability).GetFreeSeatIds()) == 50
	}, 5*time.Second, 10*time.Millisecond, "the seat actor did not serve again once the catalog was back")
}

// TestSeatCatalogStallBacksOff: a catalog that fails only after a stall
// longer than the longest backoff (a load waits up to seatCatalogTimeout)
// is not asked again by the commands queued behind the stall: the backoff
// runs from the failure, not from the ask.
func TestSeatCatalogStallBacksOff(t *testing.T) {
	h := newSeatHarness(t, SeatConfig{})
	h.catalog.mu.Lock()
	h.catalog.stall = seatCatalogRetryMax + 200*time.Millisecond
	h.catalog.mu.Unlock()
	before := h.catalog.fail(errors.Join(persistence.ErrUnavailable, errors.New("catalog stalled")))
	h.start()
	// All reads are sent at once, so each waits in the mailbox behind the
	// stall (sent one after another, the later ones would arrive after the
	// failure and could meet an expired backoff on a slow machine).
	const reads = 5
	errs := make(chan error, reads)
	for range reads {
		go func() {
			_, err := h.request("seat", stOption, &messages.GetAvailability{})
			errs <- err
		}()
	}
	for range reads {
		err := <-errs
		require.Equal(t, messages.CodeStoreUnavailable, seatCode(err), "read while the catalog stalls: %v", err)
	}
	loads := h.catalog.fail(nil) - before
	require.Equal(t, 1, loads, "each read behind the stall asked the catalog again")
}
