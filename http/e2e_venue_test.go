package http_test

import (
	"testing"
	"time"

	"github.com/concert/ticketing/node"
)

// TestE2ELargeVenue is the given input: creating a concert of 366
// dates × 1,000 seats failed with a 503 once it took longer than the
// request timeout. An admin's concert creation is not bound by the fan
// path's timeout (here 1 s, far below the few seconds the insert takes).
func TestE2ELargeVenue(t *testing.T) {
	if testing.Short() {
		t.Skip("inserts 366,000 seats")
	}
	e := startNode(t, node.Config{AdminKey: "k", RequestTimeout: time.Second})
	dates := make([]string, 366)
	for i := range dates {
		dates[i] = day(i + 1)
	}
	r := e.do("POST", "/admin/concerts", map[string]any{"title": "year-long", "dates": dates, "seatsPerDate": 1000, "price": 10},
		hdr{"X-Admin-Key", "k"})
	created := e.ok(201, r)
	id := num(t, created["id"])
	if n := len(e.freeSeats(id, day(366))); n != 1000 {
		t.Fatalf("last date has %d free seats, want 1000", n)
	}
}
