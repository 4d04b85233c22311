package chaos_test

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/concert/ticketing/chaos"
	"github.com/concert/ticketing/persistence/pgtest"
)

// TestDatabaseChaosWithHoldLimit runs the database outage and the faulty
// connection loads with the hold limit in play (HOLD_LIMIT=2): a hold's
// event and its wallet slot are written at the same time, so the store
// failing between the two is where a hold could outlive a refused slot.
// Both checks must pass, and the history must never prove a user holding
// more than 2 seats at once.
func TestDatabaseChaosWithHoldLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("runs its own PostgreSQL and a server process")
	}
	const limit = 2
	t.Run("outage", func(t *testing.T) {
		srv := pgtest.NewServer(t)
		f := &pgOutage{t: t, srv: srv}
		cfg := chaos.Config{
			Seed: *seedFlag, Fault: f, Faults: 3, MinOps: 60, MaxOps: 160,
			Jitter: 30 * time.Millisecond, MaxDown: time.Second,
			Users: 3, ClientsPerUser: 3, Dates: 2, SeatsPerDate: 20, Price: 300,
			DatabaseURL: srv.NewDatabaseURL(t),
			Settings:    []string{"ACTOR_IDLE_TTL=30m", "REQUEST_TIMEOUT=2s", fmt.Sprintf("HOLD_LIMIT=%d", limit)},
			OnReady:     f.addBystander,
		}
		rep := runFaults(t, cfg)
		for _, b := range chaos.CheckHoldLimit(rep.Facts.Ops, limit) {
			t.Errorf("hold limit: %s", b)
		}
	})
	t.Run("connection", func(t *testing.T) {
		dbURL := pgtest.NewDatabaseURL(t)
		u, err := url.Parse(dbURL)
		if err != nil {
			t.Fatal(err)
		}
		proxy, err := chaos.NewProxy(u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer proxy.Close()
		u.Host = proxy.Addr()
		cfg := chaos.Config{
			Seed: *seedFlag, Fault: &proxyFaults{p: proxy, stall: 3 * time.Second}, Faults: 6, MinOps: 60, MaxOps: 160,
			Jitter: 30 * time.Millisecond, MaxDown: time.Second,
			Users: 3, ClientsPerUser: 3, Dates: 2, SeatsPerDate: 20, Price: 300,
			DatabaseURL: u.String(),
			Settings:    []string{"REQUEST_TIMEOUT=2s", "ACTOR_IDLE_TTL=1s", fmt.Sprintf("HOLD_LIMIT=%d", limit)},
		}
		rep := runFaults(t, cfg)
		for _, b := range chaos.CheckHoldLimit(rep.Facts.Ops, limit) {
			t.Errorf("hold limit: %s", b)
		}
	})
}
