package loadgen

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"
)

// failedCheck returns the detail of the named failed check of r, or "".
func failedCheck(r *Result, name string) string {
	for _, c := range r.Checks {
		if c.Name == name && !c.OK {
			return c.Detail
		}
	}
	return ""
}

func requireOK(t *testing.T, r *Result, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || len(r.Checks) == 0 {
		t.Fatalf("%s: violations %v, checks %+v, errors %v", r.Label(), r.Violations, r.Checks, r.Errors)
	}
	if len(r.Ops) == 0 || r.Ops[0].Latency.Count == 0 || r.Throughput <= 0 || r.Machine == "" {
		t.Errorf("%s: ops %+v, throughput %v", r.Label(), r.Ops, r.Throughput)
	}
}

func TestHotSeatAgainstFake(t *testing.T) {
	_, url := startFake(t, 1000)
	c := testClient(t, url, 400)
	for _, rate := range []float64{0, 2000} {
		var hooks []bool
		r, err := RunHotSeat(context.Background(), c, HotSeatConfig{Fans: 200,
			Common: Common{Rate: rate, LoadHook: func(b bool) { hooks = append(hooks, b) }}})
		requireOK(t, r, err)
		if r.Winners != 1 || r.Conflicts != 199 || r.Mode != map[bool]string{true: "open", false: "closed"}[rate > 0] {
			t.Errorf("rate %v: %+v", rate, r)
		}
		if len(hooks) != 2 || !hooks[0] || hooks[1] {
			t.Errorf("load hook calls %v, want [true false]", hooks)
		}
	}
}

func TestHotSeatOverSeveralSeatsAgainstFake(t *testing.T) {
	_, url := startFake(t, 1000)
	r, err := RunHotSeat(context.Background(), testClient(t, url, 400), HotSeatConfig{Fans: 300, Seats: 7})
	requireOK(t, r, err)
	if r.Winners != 7 || r.Conflicts != 293 || r.SeatsPerDate != 7 || r.Params["seats"] != "7" {
		t.Errorf("winners %d, conflicts %d, seats %d, params %v", r.Winners, r.Conflicts, r.SeatsPerDate, r.Params)
	}
}

func TestHotSeatRefusesSeatsWithoutRivals(t *testing.T) {
	_, url := startFake(t, 1000)
	for _, cfg := range []HotSeatConfig{{Fans: 5, Seats: 7}, {Fans: 13, Seats: 7}, {Fans: 3000, Seats: 1001}} {
		if _, err := RunHotSeat(context.Background(), testClient(t, url, 10), cfg); err == nil {
			t.Errorf("%d fans over %d seats ran", cfg.Fans, cfg.Seats)
		}
	}
}

func TestHotSeatCatchesDoubleBooking(t *testing.T) {
	f, url := startFake(t, 1000)
	f.oversell = true
	r, err := RunHotSeat(context.Background(), testClient(t, url, 100), HotSeatConfig{Fans: 50})
	if err != nil {
		t.Fatal(err)
	}
	if r.OK() || !strings.Contains(failedCheck(r, "exactly one success"), "50 of 50 fans hold the seat") {
		t.Errorf("a double-booking server passed: %+v", r.Checks)
	}
}

func TestSoldOutAgainstFake(t *testing.T) {
	_, url := startFake(t, 1000)
	c := testClient(t, url, 100)
	r, err := RunSoldOut(context.Background(), c, SoldOutConfig{Fans: 60, Dates: 2, Seats: 5, Workers: 30})
	requireOK(t, r, err)
	if r.Winners != 10 || !r.SoldOut || r.Op("pay").Count != 10 {
		t.Errorf("result %+v", r)
	}
	r, err = RunSoldOut(context.Background(), c, SoldOutConfig{Fans: 40, Dates: 2, Seats: 5, Common: Common{Rate: 400}})
	requireOK(t, r, err)
	if _, err := RunSoldOut(context.Background(), c, SoldOutConfig{Fans: 5, Dates: 2, Seats: 5}); err == nil {
		t.Error("fewer fans than seats accepted")
	}
}

func TestSoldOutCatchesASeatStillOffered(t *testing.T) {
	f, url := startFake(t, 1000)
	f.leakSeat = true
	r, err := RunSoldOut(context.Background(), testClient(t, url, 100), SoldOutConfig{Fans: 30, Dates: 1, Seats: 5, Workers: 10, MaxTries: 5})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(failedCheck(r, "available-seats says 0 everywhere"), "1 seats still offered") {
		t.Errorf("a seat offered after the sale went unseen: %+v", r.Checks)
	}
}

// stormRuns is how many wallet storms a test runs, at most, to see the
// operations it needs: a storm lasts its duration however busy the
// machine, and a busy one gets through few operations in it (once 11
// charges, 12 payments and 2 replays in 300 ms), which a random draw may
// leave without a replay or a payment.
const stormRuns = 10

func TestWalletStormAgainstFake(t *testing.T) {
	_, url := startFake(t, 1000)
	c := testClient(t, url, 64)
	for run := 1; ; run++ {
		r, err := RunWalletStorm(context.Background(), c, WalletStormConfig{Wallets: 3, Workers: 8, Duration: 300 * time.Millisecond,
			Seats: 200, ReplayShare: 0.3})
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK() {
			t.Fatalf("%s: violations %v, checks %+v, errors %v", r.Label(), r.Violations, r.Checks, r.Errors)
		}
		if r.Op("charge") != nil && r.Op("pay") != nil && r.Op("replay") != nil {
			requireOK(t, r, err)
			return
		}
		if run == stormRuns {
			t.Fatalf("%d runs, none with a charge, a payment and a replay: ops %+v", run, r.Ops)
		}
	}
}

func TestWalletStormCatchesIgnoredIdempotencyKeys(t *testing.T) {
	f, url := startFake(t, 1000)
	f.ignoreKeys = true
	var r *Result
	for run := 1; ; run++ {
		var err error
		// One worker: with several, a payment of the same wallet between a
		// charge and its replay can bring the balance back to the first
		// answer (a charge of the price, 1,000), and a replay charged again
		// then looks honoured: that failed the balance check in one CI run
		// (2 December 2026).
		r, err = RunWalletStorm(context.Background(), testClient(t, url, 64), WalletStormConfig{Wallets: 2, Workers: 1,
			Duration: 200 * time.Millisecond, Seats: 100, ReplayShare: 1})
		if err != nil {
			t.Fatal(err)
		}
		if d := failedCheck(r, "every balance exact"); d != "" {
			t.Fatalf("the balances, with the replays counted, should be exact: %s", d)
		}
		if r.Op("replay") != nil {
			break // a charge, and so its replay, was made
		}
		if run == stormRuns {
			t.Fatalf("%d runs, none with a charge: ops %+v", run, r.Ops)
		}
	}
	if !strings.Contains(failedCheck(r, "replayed charge changes nothing"), "did not answer the first answer") {
		t.Errorf("replays charged twice went unseen: %+v", r.Checks)
	}
}

func TestQueueSurgeAgainstFake(t *testing.T) {
	_, url := startFake(t, 20)
	c := testClient(t, url, 64)
	r, err := RunQueueSurge(context.Background(), c, QueueSurgeConfig{Users: 120, Workers: 16, Admit: 5,
		Common: Common{ActiveTokens: 20}})
	requireOK(t, r, err)
	var admission bool
	for _, ch := range r.Checks {
		admission = admission || ch.Name == "admission from the head"
	}
	if !admission {
		t.Errorf("admission not checked: %+v, notes %v", r.Checks, r.Notes)
	}
	if r.Op("token").Count != 120+12 {
		t.Errorf("token requests %d, want 132 (every 10th user twice)", r.Op("token").Count)
	}
}

func TestQueueSurgeCatchesLIFOAdmission(t *testing.T) {
	f, url := startFake(t, 10)
	f.lifo = true
	r, err := RunQueueSurge(context.Background(), testClient(t, url, 64), QueueSurgeConfig{Users: 60, Workers: 8, Admit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(failedCheck(r, "admission from the head"), "3 users from the back of the line became ACTIVE") {
		t.Errorf("admission from the back went unseen: %+v", r.Checks)
	}
}

func TestJourneyAgainstFake(t *testing.T) {
	_, url := startFake(t, 10)
	c := testClient(t, url, 64)
	r, err := RunJourney(context.Background(), c, JourneyConfig{Fans: 30, Think: time.Millisecond, Poll: 5 * time.Millisecond})
	requireOK(t, r, err)
	if r.Winners != 30 || r.Op("poll") == nil {
		t.Errorf("winners %d (want all 30, admitted as others paid), ops %+v", r.Winners, r.Ops)
	}
}

// TestFreshHoldsAgainstFake: each run ends by trying every seat of its
// stock (closed loop: the duration is far longer; open loop: its schedule
// holds more), so what it does is the same however busy the machine.
func TestFreshHoldsAgainstFake(t *testing.T) {
	f, url := startFake(t, 1000)
	f.holdLimit = 2
	c := testClient(t, url, 64)
	r, err := RunFreshHolds(context.Background(), c, FreshHoldsConfig{Workers: 8, Duration: time.Minute, Dates: 3, Seats: 10, PerUser: 2})
	requireOK(t, r, err)
	// 30 seats, 2 a user: 15 users, and one more per client.
	if r.Holds != 30 || r.Attempts != 30 || r.ErrorCount() != 0 || r.Users != 15+8 || r.Workers != 8 || r.Dates != 3 ||
		r.Throughput != r.HoldsPerSec || r.ThroughputUnit != "durable holds/s" || r.HoldLatency.Count != 30 {
		t.Errorf("closed: %+v", r)
	}
	if !strings.Contains(strings.Join(r.Notes, "\n"), "the 30 seats set up were all tried") {
		t.Errorf("closed: no note that the stock ran out: %v", r.Notes)
	}

	// Open loop: 40 holds due, 10 a user; one date of 50 seats is enough.
	r, err = RunFreshHolds(context.Background(), c, FreshHoldsConfig{Duration: 10 * time.Millisecond, Dates: 3, Seats: 50, PerUser: 2,
		Common: Common{Rate: 4000}})
	requireOK(t, r, err)
	if r.Mode != "open" || r.Holds != 40 || r.Users != 20 || r.Dates != 1 || r.ErrorCount() != 0 {
		t.Errorf("open: %+v", r)
	}
	if strings.Contains(strings.Join(r.Notes, "\n"), "all tried") {
		t.Errorf("open: a stock larger than the schedule noted as run out: %v", r.Notes)
	}
}

func TestFreshHoldsMoreHoldsPerUserThanTheServerAllows(t *testing.T) {
	f, url := startFake(t, 1000)
	f.holdLimit = 2
	r, err := RunFreshHolds(context.Background(), testClient(t, url, 16), FreshHoldsConfig{Workers: 1, Duration: time.Minute,
		Dates: 1, Seats: 9, PerUser: 3})
	if err != nil {
		t.Fatal(err)
	}
	// One client, users of 3 holds each, the third refused: 6 held, 3
	// refused (those seats stay free: the verdict holds).
	if !r.OK() || r.Holds != 6 || r.Errors["hold: HTTP 409 HOLD_LIMIT"] != 3 ||
		!strings.Contains(strings.Join(r.Notes, "\n"), "fewer than the 3 holds per user") {
		t.Errorf("holds %d, errors %v, checks %+v, notes %v", r.Holds, r.Errors, r.Checks, r.Notes)
	}
}

func TestFreshHoldsCatchesAHeldSeatStillOffered(t *testing.T) {
	f, url := startFake(t, 1000)
	f.leakSeat = true
	r, err := RunFreshHolds(context.Background(), testClient(t, url, 16), FreshHoldsConfig{Workers: 4, Duration: time.Minute,
		Dates: 2, Seats: 5})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(failedCheck(r, "every acknowledged hold held"), "2 of the 10 seats answered 200 are still offered") ||
		!strings.Contains(failedCheck(r, "200s = seats no longer offered"), "10 200s (and 0 holds without an answer), but 8 of 10") {
		t.Errorf("held seats offered went unseen: %+v", r.Checks)
	}
}

func TestFreshHoldsCatchesAFreshSeatRefused(t *testing.T) {
	f, url := startFake(t, 1000)
	f.takeLast = true
	r, err := RunFreshHolds(context.Background(), testClient(t, url, 16), FreshHoldsConfig{Workers: 4, Duration: time.Minute,
		Dates: 2, Seats: 5})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors["hold: HTTP 409 SEAT_UNAVAILABLE"] != 2 || r.Conflicts != 2 || r.Holds != 8 ||
		!strings.Contains(failedCheck(r, "200s = seats no longer offered"), "but 10 of 10 seats are no longer offered") {
		t.Errorf("errors %v, checks %+v", r.Errors, r.Checks)
	}
}

func TestPreflightSaysWhyTokensWait(t *testing.T) {
	_, url := startFake(t, 10)
	c := testClient(t, url, 16)
	if _, err := Setup(context.Background(), c, SetupConfig{Users: 4, NoCharge: true}); err != nil {
		t.Fatal(err)
	}
	_, err := RunHotSeat(context.Background(), c, HotSeatConfig{Fans: 8, Common: Common{ActiveTokens: 10}})
	if err == nil || !strings.Contains(err.Error(), "ACTIVE_TOKENS=10 and 4 are already ACTIVE") ||
		!strings.Contains(err.Error(), "ACTIVE_TOKENS >= 12") {
		t.Errorf("error = %v", err)
	}
}

func TestMultiClientSpreadsByUser(t *testing.T) {
	var us []*url.URL
	for _, raw := range []string{"http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"} {
		u, _ := CheckTarget(raw, false)
		us = append(us, u)
	}
	c := NewMultiClient(us, ClientOptions{})
	if c.Target() != "http://127.0.0.1:1,http://127.0.0.1:2,http://127.0.0.1:3" {
		t.Errorf("Target = %q", c.Target())
	}
	if c.node(7) != c.node(7) || c.node(7) != c.nodes[1] || c.node(9) != c.nodes[0] {
		t.Error("a user's requests do not stick to one base URL")
	}
	seen := map[*baseURL]bool{}
	for range 6 {
		seen[c.node(0)] = true
	}
	if len(seen) != 3 {
		t.Errorf("anonymous requests reach %d of 3 base URLs", len(seen))
	}
}
