package http_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
	// The fan path keeps its 1 s: the first read of a date activates its
	// seat actor, which loads the date's seats, and right after 366,000
	// inserts on a busy machine that may take longer. Its client is told
	// 503 and to retry, as this one does.
	var free []any
	waitFor(t, 30*time.Second, "the last date's seats", func() bool {
		r := e.do("GET", fmt.Sprintf("/concerts/%d/available-seats?date=%s", id, day(366)), nil, nil)
		if r.status == 503 {
			return false
		}
		require.Equal(t, 200, r.status, "body %s", r.raw)
		l := r.list(t)
		require.Len(t, l, 1)
		free = l[0]["seats"].([]any)
		return true
	})
	if n := len(free); n != 1000 {
		t.Fatalf("last date has %d free seats, want 1000", n)
	}
}
