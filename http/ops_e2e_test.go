package http_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/stretchr/testify/require"

	"github.com/concert/ticketing/node"
)

// The contract check reads the ops page as text.
func init() { openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder) }

// opsLoad keeps holding and cancelling seats, topping up and now and then
// paying (then taking a new token) until stop is called, so that the ops
// figures move. It needs a free active slot per user. It returns how many
// holds it made so far through count.
func (e *env) opsLoad(t *testing.T, users int) (stop func(), count func() int64) {
	t.Helper()
	concertID, _ := e.concert(10, 1000, day(1))
	seats := e.freeSeats(concertID, day(1))
	var holds atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	for u := range users {
		user := e.user(fmt.Sprintf("load%d", u))
		token := e.token(user)
		e.charge(user, 1_000_000)
		wg.Add(1)
		go func() {
			defer wg.Done()
			le := *e
			le.t = t
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				seat := seats[(u*7+i)%len(seats)]
				r := le.do("POST", "/reservations", map[string]any{"userId": user, "seatId": seat}, bearer(token))
				if r.status != 200 {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				holds.Add(1)
				id := num(t, r.obj(t)["id"])
				if i%20 == 19 {
					if le.do("POST", "/payments", map[string]any{"reservationId": id, "amount": 10}, bearer(token)).status == 200 {
						if r := le.do("POST", "/users/token", map[string]any{"userId": user}, nil); r.status == 200 {
							token = r.obj(t)["token"].(string)
						}
					}
					continue
				}
				le.do("DELETE", fmt.Sprintf("/reservations/%d", id), nil, bearer(token))
				le.do("PATCH", "/customers/point", map[string]any{"userId": user, "chargeBalance": 1}, nil)
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }, holds.Load
}

func TestE2EOpsData(t *testing.T) {
	e := startNode(t, node.Config{AdminKey: adminKey, OpsPage: true})
	page := e.do("GET", "/ops", nil, nil)
	require.Equal(t, 200, page.status)
	require.Contains(t, page.header.Get("Content-Type"), "text/html")
	csp := page.header.Get("Content-Security-Policy")
	require.Contains(t, csp, "default-src 'none'")
	require.Contains(t, csp, "script-src 'sha256-")
	require.NotContains(t, strings.ToLower(string(page.raw)), "http://", "the page loads nothing from elsewhere")
	require.NotContains(t, strings.ToLower(string(page.raw)), "https://")

	first := e.ok(200, e.do("GET", "/ops/data", nil, nil))
	require.Nil(t, first["windowSeconds"], "no window on the first call")
	require.Nil(t, first["rates"].(map[string]any)["holds"])

	stop, holds := e.opsLoad(t, 4)
	defer stop()
	waitFor(t, 10*time.Second, "some holds", func() bool { return holds() >= 20 })
	time.Sleep(600 * time.Millisecond)
	d := e.ok(200, e.do("GET", "/ops/data", nil, nil))
	stop()
	require.NotNil(t, d["windowSeconds"])
	rates := d["rates"].(map[string]any)
	require.NotEqual(t, "0", fmt.Sprint(rates["holds"]), "holds/s")
	require.NotNil(t, rates["charges"])
	store := d["store"].(map[string]any)
	require.Equal(t, true, store["ready"])
	require.Contains(t, []any{"ok", "degraded"}, store["health"])
	require.EqualValues(t, "16", fmt.Sprint(store["poolMax"]))
	journal := d["journal"].(map[string]any)
	require.NotNil(t, journal["p99LatencySeconds"])
	require.NotNil(t, journal["meanBatchSize"])
	var found bool
	for _, r := range d["routes"].([]any) {
		row := r.(map[string]any)
		if row["method"] == "POST" && row["route"] == "/reservations" {
			found = true
			require.NotNil(t, row["p99Seconds"])
			require.NotNil(t, row["requestsPerSecond"])
		}
	}
	require.True(t, found, "routes %v", d["routes"])
}

func TestE2EOpsPageIsOffByDefault(t *testing.T) {
	e := startNode(t, node.Config{})
	e.fails(404, "NOT_FOUND", e.do("GET", "/ops", nil, nil))
	e.fails(404, "NOT_FOUND", e.do("GET", "/ops/data", nil, nil))
}
