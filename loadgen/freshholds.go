package loadgen

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// FreshHoldsConfig tunes RunFreshHolds.
type FreshHoldsConfig struct {
	Common
	// Workers is the closed loop's clients, each sending its next hold as
	// soon as its last one is answered; default 64.
	Workers int
	// Duration of the load; default 30s. The run ends sooner if every seat
	// set up is tried.
	Duration time.Duration
	// Dates (at most 366, the API's limit per concert) × Seats per date
	// (at most 1,000) is the stock created before the load. Default: 366
	// dates, and seats enough for Duration at 12,000 holds/s (up to 1,000
	// a date). Open loop creates only the dates its Rate × Duration holds
	// need.
	Dates, Seats int
	// PerUser is the holds one user makes before its client moves on to
	// the next user; at most the server's HOLD_LIMIT. Default 4, the
	// server's default HOLD_LIMIT.
	PerUser int
	Price   int64 // seat price in won; default 1000
}

// freshStockRate (holds/s) is the rate the default stock lasts Duration
// at: above what a 2-core machine makes (about 9,000/s), and what one
// server core makes at the 80 µs per hold.
const freshStockRate = 12000

func (cfg FreshHoldsConfig) withDefaults() FreshHoldsConfig {
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 30 * time.Second
	}
	if cfg.Dates <= 0 {
		cfg.Dates = 366
	}
	if cfg.Seats <= 0 {
		cfg.Seats = min(1000, max(1, int(math.Ceil(cfg.Duration.Seconds()*freshStockRate/float64(cfg.Dates)))))
	}
	if cfg.PerUser <= 0 {
		cfg.PerUser = 4
	}
	if cfg.Price <= 0 {
		cfg.Price = 1000
	}
	return cfg
}

// Users is the number of users, each with an ACTIVE token, a closed-loop
// run of cfg sets up (an open-loop one, fewer).
func (cfg FreshHoldsConfig) Users() int {
	cfg = cfg.withDefaults()
	return freshUsers(cfg.Dates*cfg.Seats, cfg.PerUser, cfg.Workers)
}

// freshUsers is one user per perUser seats, and one more per closed-loop
// worker (0 in open loop), whose last user may be left part-used.
func freshUsers(seats, perUser, workers int) int {
	return (seats+perUser-1)/perUser + workers
}

// Outcomes of one seat's hold in a fresh-holds run.
const (
	seatUntried uint8 = iota
	seatHeld          // answered 200
	seatRefused       // answered 4xx: nothing changed
	seatUnknown       // no answer, or 5xx: it may be held
)

// RunFreshHolds: the on-sale's hold path alone. Every hold is of a seat
// nobody has tried (the generator knows the seat ids from the set-up; no
// listing in the load), is durable when answered, and stays: never paid,
// never cancelled, so holds accumulate as in an on-sale. Hold k takes
// seat k/Dates of date k%Dates, so holds in flight spread over the dates
// as a sold-out's fans do. Closed loop: Workers clients for Duration,
// each holding PerUser seats with one user, then going on with the next
// user. Open loop: Rate holds/s, hold k by user k/PerUser. A refusal —
// SEAT_UNAVAILABLE included, as no two holds share a seat — counts as an
// error.
//
// The headline is durable holds/s; the server's CPU per hold comes from
// the usage the caller reads around the load (Result.AttachUsage). The
// verdict: no seat answered 200 is offered by available-seats, and the
// seats no longer offered are as many as the 200s.
func RunFreshHolds(ctx context.Context, c *Client, cfg FreshHoldsConfig) (*Result, error) {
	cfg = cfg.withDefaults()
	// The holds the load may make: every seat in closed loop, the
	// schedule's in open loop (fewer if the stock is smaller: short).
	seats, workers, planned, short := cfg.Dates*cfg.Seats, cfg.Workers, cfg.Duration, false
	if cfg.Rate > 0 {
		if due := int(cfg.Rate * cfg.Duration.Seconds()); due < seats {
			seats = max(due, 1)
			cfg.Dates = (seats + cfg.Seats - 1) / cfg.Seats
		} else {
			short, planned = due > seats, time.Duration(float64(seats)/cfg.Rate*float64(time.Second))
		}
		workers = 0
	}
	users := freshUsers(seats, cfg.PerUser, workers)
	if err := PreflightTokens(ctx, c, "fresh-holds", users, cfg.ActiveTokens); err != nil {
		return nil, err
	}
	fx, err := Setup(ctx, c, SetupConfig{
		Title: "concertbench fresh-holds " + time.Now().UTC().Format(time.RFC3339Nano),
		Dates: cfg.Dates, SeatsPerDate: cfg.Seats, Users: users, Price: cfg.Price, NoCharge: true,
		Concurrency: cfg.SetupConcurrency, TokenWait: cfg.TokenWait, OnProgress: cfg.OnProgress,
	})
	if err != nil {
		return nil, err
	}
	seatAt := func(k int) Seat { return fx.Dates[k%len(fx.Dates)].Seats[k/len(fx.Dates)] }
	// got[k] is the outcome of hold k, written by the one goroutine that
	// made it and read after they all ended.
	got := make([]uint8, seats)
	// Each closed-loop client holds with one user until it made PerUser
	// holds (or was refused HOLD_LIMIT), then takes the next user.
	type client struct {
		w          *conn
		user, made int
	}
	clients := make([]client, workers)
	for i := range clients {
		clients[i] = client{w: c.newConn(), made: cfg.PerUser}
	}
	var nextUser, holds, failed atomic.Int64
	if cfg.Rate <= 0 {
		warmConns(ctx, c, workers, func(i int) int64 { return fx.Users[i].ID })
	}

	cfg.mark(true)
	start := time.Now().Add(20 * time.Millisecond)
	m := newMeter(start, "hold")
	opHold := m.op(0)
	stopProgress := startProgress(cfg.OnProgress, start, func(el time.Duration) Progress {
		return Progress{Phase: "fresh-holds", Done: holds.Load(), Errors: failed.Load(), Elapsed: el, Duration: planned}
	})
	// Closed-loop clients send no hold after the run's end (each answer is
	// awaited up to the request timeout); the open loop's schedule ends by
	// itself, and a deadline would drop the arrivals a busy machine sends
	// late.
	loadCtx := ctx
	if cfg.Rate <= 0 {
		var stopLoad context.CancelFunc
		loadCtx, stopLoad = context.WithDeadline(ctx, start.Add(cfg.Duration))
		defer stopLoad()
	}
	runArrivals(loadCtx, seats, workers, cfg.Rate, start, func(worker, k int, intended time.Time) {
		var u *User
		var w *conn
		if cfg.Rate > 0 {
			u, w = &fx.Users[k/cfg.PerUser], c.newConn()
		} else {
			cl := &clients[worker]
			if cl.made >= cfg.PerUser {
				cl.user, cl.made = int(nextUser.Add(1)-1), 0
			}
			if cl.user >= len(fx.Users) {
				failed.Add(1)
				m.fail("hold: not sent, no user left (is -fresh-per-user above the server's HOLD_LIMIT?)")
				return
			}
			cl.made++
			u, w = &fx.Users[cl.user], cl.w
		}
		_, status, code, err := w.hold(u.auth, u.ID, seatAt(k).ID)
		opHold.observe(worker, intended, status)
		switch {
		case err == nil && status == 200:
			got[k] = seatHeld
			holds.Add(1)
			return
		case err == nil && status < 500:
			got[k] = seatRefused
			if status == 409 && code == "HOLD_LIMIT" && cfg.Rate <= 0 {
				clients[worker].made = cfg.PerUser // the server's HOLD_LIMIT is lower: next user
			}
		default:
			got[k] = seatUnknown
		}
		failed.Add(1)
		m.failAt("hold", status, code, err)
	})
	elapsed := time.Since(start)
	stopProgress()
	cfg.mark(false)

	o := FreshHoldsOutcome{Seats: len(fx.Dates) * cfg.Seats, Dates: len(fx.Dates)}
	attempts := 0
	for _, g := range got {
		switch g {
		case seatHeld:
			o.Holds++
		case seatUnknown:
			o.Unknown++
		}
		if g != seatUntried {
			attempts++
		}
	}
	ranOut := attempts == seats && (cfg.Rate <= 0 || short)
	window := min(elapsed, planned)
	r := &Result{
		Scenario: "fresh-holds", Mode: cfg.mode(), OfferedRate: cfg.Rate,
		Users: users, Dates: len(fx.Dates), SeatsPerDate: cfg.Seats, Workers: workers,
		Params: map[string]string{"dates": itoa(len(fx.Dates)), "seats per date": itoa(cfg.Seats),
			"holds per user": itoa(cfg.PerUser), "duration": dtoa(cfg.Duration)},
		Attempts: int64(attempts), Holds: int64(o.Holds), ElapsedSeconds: elapsed.Seconds(),
	}
	if cfg.Rate > 0 {
		r.Params["rate"] = rateString(cfg.Rate) + " holds/s"
	} else {
		r.Params["clients"] = itoa(workers)
	}
	finishResult(r, c, m, window)
	r.Conflicts = r.Errors["hold: "+outcomeKey(409, "SEAT_UNAVAILABLE")]
	r.HoldsPerSec = float64(r.Holds) / window.Seconds()
	r.AttemptsPerSec = float64(r.Attempts) / window.Seconds()
	r.Throughput, r.ThroughputUnit = r.HoldsPerSec, "durable holds/s"
	if op := r.Op("hold"); op != nil {
		r.HoldLatency = op.Latency
	}

	checkCtx, checkCancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer checkCancel()
	left, err := seatsLeft(checkCtx, c, fx.ConcertID, fx.Dates, 16)
	o.FreeErr, o.DatesRead = err, len(left)
	free := map[int64]bool{}
	for _, ids := range left {
		for _, id := range ids {
			free[id] = true
		}
	}
	o.Free = len(free)
	for k, g := range got {
		if g == seatHeld && free[seatAt(k).ID] {
			o.HeldOffered = append(o.HeldOffered, seatAt(k).ID)
		}
	}
	r.addChecks(CheckFreshHolds(o)...)
	if ranOut {
		r.Notes = append(r.Notes, fmt.Sprintf("the %s seats set up were all tried after %s, before the run's %s ended: "+
			"give it more dates or seats per date", groupInt(int64(seats)), secs(elapsed.Seconds()), cfg.Duration))
	}
	if r.Errors["hold: "+outcomeKey(409, "HOLD_LIMIT")] > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("holds refused HOLD_LIMIT: the server allows a user fewer than the %d holds "+
			"per user asked for", cfg.PerUser))
	}
	r.Notes = append(r.Notes, fmt.Sprintf("the %s tokens of this run stay ACTIVE until TOKEN_IDLE_TTL passes, and its %s holds "+
		"keep their seats until HOLD_TTL (never paid, never cancelled)", groupInt(int64(users)), groupInt(int64(o.Holds))))
	return r, ctx.Err()
}
