package loadgen

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// HoldsConfig tunes RunHolds.
type HoldsConfig struct {
	// Duration of the run; default 20s.
	Duration time.Duration
	// Rate is the open-loop offered rate of hold attempts per second over
	// all users; 0 runs closed loop (each user sends its next hold as soon
	// as its previous hold and cancel are answered).
	Rate float64
	// Seed for the seat choice; 0 picks one.
	Seed uint64
	// OnProgress, if set, is called about four times a second.
	OnProgress func(Progress)
	// LoadHook: see Common.
	LoadHook func(begin bool)
}

// failures counts one worker's failed requests by kind.
type failures struct {
	errors map[string]int64
}

func (f *failures) fail(key string) {
	if f.errors == nil {
		f.errors = map[string]int64{}
	}
	f.errors[key]++
}

// holdTally is one worker's count, merged at the end.
type holdTally struct {
	failures
	attempts, holds, conflicts, cancels int64
}

// RunHolds runs the hold-path scenario on fx: one goroutine per user, user
// i on date i%len(fx.Dates), each holding a random seat of its date and, on
// success, cancelling the hold at once so the seat is free again. Only the
// hold requests are in the hold latency; in open loop it is measured from
// each hold's intended send time.
func RunHolds(ctx context.Context, c *Client, fx *Fixture, cfg HoldsConfig) (*Result, error) {
	if len(fx.Users) == 0 || len(fx.Dates) == 0 {
		return nil, errors.New("holds: empty fixture")
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 20 * time.Second
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	tallies := make([]holdTally, len(fx.Users))
	var liveHolds, liveAttempts, liveErrors atomic.Int64

	if cfg.LoadHook != nil {
		cfg.LoadHook(true)
	}
	start := time.Now().Add(20 * time.Millisecond) // every worker is parked by then
	end := start.Add(cfg.Duration)
	m := newMeter(start, "hold", "cancel")
	holdOp, cancelOp := m.op(0), m.op(1)
	var pacer *Pacer
	if cfg.Rate > 0 {
		pacer = NewPacer(start, cfg.Rate)
	}
	ctx, cancel := context.WithDeadline(ctx, end.Add(30*time.Second))
	defer cancel()

	stopProgress := startProgress(cfg.OnProgress, start, func(el time.Duration) Progress {
		return Progress{Phase: "holds", Done: liveHolds.Load(), Errors: liveErrors.Load(), Elapsed: el, Duration: cfg.Duration}
	})

	var wg sync.WaitGroup
	for i := range fx.Users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := &tallies[i]
			user := &fx.Users[i]
			seats := fx.Dates[i%len(fx.Dates)].Seats
			rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
			w := c.newConn()
			timer := time.NewTimer(time.Until(start))
			defer timer.Stop()
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
			for ctx.Err() == nil {
				var intended time.Time
				if pacer != nil {
					_, intended = pacer.Next()
					if !intended.Before(end) {
						return
					}
					if d := time.Until(intended); d > 0 {
						timer.Reset(d)
						select {
						case <-timer.C:
						case <-ctx.Done():
							return
						}
					}
				} else {
					intended = time.Now()
					if !intended.Before(end) {
						return
					}
				}
				seat := seats[rng.IntN(len(seats))]
				t.attempts++
				liveAttempts.Add(1)
				id, status, code, err := w.hold(user.auth, user.ID, seat.ID)
				holdOp.observe(i, intended, status)
				switch {
				case err != nil:
					t.fail(transportKind(err))
					liveErrors.Add(1)
					continue
				case status == 200:
					t.holds++
					liveHolds.Add(1)
				case status == 409 && code == "SEAT_UNAVAILABLE":
					t.conflicts++
					continue
				default:
					t.fail(outcomeKey(status, code))
					liveErrors.Add(1)
					continue
				}
				// Free the seat, retrying a little: a user whose holds pile
				// up hits HOLD_LIMIT for the rest of the run.
				for try := 0; try < 3; try++ {
					t0 := time.Now()
					status, code, err := w.cancel(user.auth, user.ID, id)
					cancelOp.observe(i, t0, status)
					if err == nil && status == 200 {
						t.cancels++
						break
					}
					if err != nil {
						t.fail("cancel: " + transportKind(err))
					} else {
						t.fail("cancel: " + outcomeKey(status, code))
					}
					liveErrors.Add(1)
					if err == nil && status != 503 {
						break // the server answered: retrying will not change it
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()
	if cfg.LoadHook != nil {
		cfg.LoadHook(false)
	}

	mode := "closed"
	if cfg.Rate > 0 {
		mode = "open"
	}
	r := &Result{
		Scenario:       "holds",
		Mode:           mode,
		Machine:        Machine(),
		Target:         c.Target(),
		Users:          len(fx.Users),
		Dates:          len(fx.Dates),
		SeatsPerDate:   len(fx.Dates[0].Seats),
		OfferedRate:    cfg.Rate,
		ElapsedSeconds: elapsed.Seconds(),
		Errors:         map[string]int64{},
	}
	for i := range tallies {
		t := &tallies[i]
		r.Attempts += t.attempts
		r.Holds += t.holds
		r.Conflicts += t.conflicts
		r.Cancels += t.cancels
		for k, v := range t.errors {
			r.Errors[k] += v
		}
	}
	// Rates are per second of the scheduled window: the last answers
	// arrive a little after it, but they were sent within it.
	window := min(elapsed, cfg.Duration).Seconds()
	r.HoldsPerSec = float64(r.Holds) / window
	r.AttemptsPerSec = float64(r.Attempts) / window
	errs := r.Errors
	finishResult(r, c, m, min(elapsed, cfg.Duration))
	r.Errors = errs
	r.Params = map[string]string{"users": itoa(len(fx.Users)), "dates": itoa(len(fx.Dates)),
		"seats per date": itoa(len(fx.Dates[0].Seats)), "duration": dtoa(cfg.Duration)}
	if cfg.Rate > 0 {
		r.Params["rate"] = rateString(cfg.Rate) + " holds/s"
	}
	r.Throughput, r.ThroughputUnit = r.HoldsPerSec, "holds/s"
	if o := r.Op("hold"); o != nil {
		r.HoldLatency = o.Latency
	}
	if o := r.Op("cancel"); o != nil {
		cl := o.Latency
		r.CancelLatency = &cl
	} else {
		r.CancelLatency = &Latency{}
	}
	if ctx.Err() == nil {
		checkCtx, checkCancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer checkCancel()
		o := HoldsOutcome{Holds: r.Holds, Cancels: r.Cancels, Seats: len(fx.Dates) * len(fx.Dates[0].Seats)}
		left, err := seatsLeft(checkCtx, c, fx.ConcertID, fx.Dates, 16)
		o.FreeErr = err
		for _, ids := range left {
			o.Free += len(ids)
		}
		r.addChecks(CheckHolds(o)...)
	}
	return r, ctx.Err()
}

// startProgress calls fn's snapshot on cb four times a second until the
// returned stop is called (which sends one last snapshot).
func startProgress(cb func(Progress), start time.Time, snap func(time.Duration) Progress) (stop func()) {
	if cb == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				cb(snap(time.Since(start)))
				return
			case <-tick.C:
				cb(snap(max(time.Since(start), 0)))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
