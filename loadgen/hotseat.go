package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// HotSeatConfig tunes RunHotSeat.
type HotSeatConfig struct {
	Common
	// Fans try the date's seat (fan i seat i%Seats); default 10,000.
	// Closed loop sends all their holds at once (one connection each);
	// open loop at Rate fans/s.
	Fans int
	// Seats is how many seats of the date the fans share, fan i trying
	// seat i%Seats; default 1, the hot seat. More than one needs at least
	// two fans a seat (else some seat has nobody to race) and at most
	// 1,000 (the API's seats per date). Issue 8's second burst is 3,000
	// fans over 50 seats.
	Seats int
	Price int64
}

// RunHotSeat: Fans fans, each with an ACTIVE token, try to hold the one
// seat of a new concert date (or one of its Seats seats) at the same
// moment. Exactly one must win each seat and every other one must be told
// 409 SEAT_UNAVAILABLE. The result's AnsweredSeconds is the time from the
// burst's start to its last answer.
func RunHotSeat(ctx context.Context, c *Client, cfg HotSeatConfig) (*Result, error) {
	if cfg.Fans <= 0 {
		cfg.Fans = 10000
	}
	if cfg.Price <= 0 {
		cfg.Price = 1000
	}
	cfg.Seats = max(cfg.Seats, 1)
	if cfg.Seats > 1 && (cfg.Fans < 2*cfg.Seats || cfg.Seats > 1000) {
		return nil, fmt.Errorf("hot-seat: %d fans over %d seats: want at least two fans a seat and at most 1,000 seats", cfg.Fans, cfg.Seats)
	}
	if err := PreflightTokens(ctx, c, "hot-seat", cfg.Fans, cfg.ActiveTokens); err != nil {
		return nil, err
	}
	fx, err := Setup(ctx, c, SetupConfig{
		Title: "concertbench hot-seat " + time.Now().UTC().Format(time.RFC3339Nano),
		Dates: 1, SeatsPerDate: cfg.Seats, Users: cfg.Fans, Price: cfg.Price, NoCharge: true,
		Concurrency: cfg.SetupConcurrency, TokenWait: cfg.TokenWait, OnProgress: cfg.OnProgress,
	})
	if err != nil {
		return nil, err
	}
	seats := fx.Dates[0].Seats
	userKey := func(i int) int64 { return fx.Users[i].ID }
	warmConns(ctx, c, cfg.Fans, userKey)
	// The closed burst's reference: the trivial route sent by the same
	// fans in the same shape, just before the holds (not part of the run's
	// load window or its server usage).
	var ref *HTTPCeiling
	var refErr error
	if cfg.Rate <= 0 {
		ref, refErr = MeasureBurst(ctx, c, "/healthz", cfg.Fans, userKey)
	}

	cfg.mark(true)
	start := time.Now().Add(50 * time.Millisecond)
	m := newMeter(start, "hold")
	hold := m.op(0)
	var (
		successes, conflicts, other atomic.Int64
		lastAnswer                  atomic.Int64 // ns after start
		mu                          sync.Mutex
		wins                        = map[int64]int{} // seat id → 200 answers
		done                        atomic.Int64
	)
	stopProgress := startProgress(cfg.OnProgress, start, func(el time.Duration) Progress {
		return Progress{Phase: "hot-seat", Done: done.Load(), Total: int64(cfg.Fans), Errors: other.Load(), Elapsed: el}
	})
	runCtx, cancel := context.WithTimeout(ctx, 2*time.Minute+time.Duration(float64(cfg.Fans)/max(cfg.Rate, 1)*float64(time.Second)))
	defer cancel()
	runArrivals(runCtx, cfg.Fans, cfg.Fans, cfg.Rate, start, func(worker, unit int, intended time.Time) {
		fan, seat := &fx.Users[unit], seats[unit%len(seats)]
		w := c.newConn()
		_, status, code, err := w.hold(fan.auth, fan.ID, seat.ID)
		if cfg.Rate <= 0 {
			// A closed burst's fans all mean to send at its start: their
			// latency counts from it, however late a goroutine woke.
			intended = start
		}
		hold.observe(worker, intended, status)
		latestAnswer(&lastAnswer, start)
		done.Add(1)
		switch {
		case err == nil && status == 200:
			successes.Add(1)
			mu.Lock()
			wins[seat.ID]++
			mu.Unlock()
		case err == nil && status == 409 && code == "SEAT_UNAVAILABLE":
			conflicts.Add(1)
		default:
			other.Add(1)
			m.failAt("hold", status, code, err)
		}
	})
	stopProgress()
	cfg.mark(false)
	answered := time.Duration(lastAnswer.Load())

	r := &Result{
		Scenario: "hot-seat", Mode: cfg.mode(), OfferedRate: cfg.Rate,
		Users: cfg.Fans, Dates: 1, SeatsPerDate: len(seats), Fans: cfg.Fans,
		Params:   map[string]string{"fans": itoa(cfg.Fans), "seats": itoa(len(seats))},
		Attempts: int64(cfg.Fans), Holds: successes.Load(), Conflicts: conflicts.Load(),
		Winners: int(successes.Load()), AnsweredSeconds: answered.Seconds(), ElapsedSeconds: answered.Seconds(),
	}
	if cfg.Rate > 0 {
		r.Params["rate"] = rateString(cfg.Rate) + " fans/s"
	}
	finishResult(r, c, m, answered)
	r.Throughput, r.ThroughputUnit = r.RequestsPerSec, "answers/s"
	r.HoldLatency = r.Ops[0].Latency
	r.BurstReference = ref
	if refErr != nil {
		r.Notes = append(r.Notes, "the GET /healthz burst before the holds failed: "+refErr.Error())
	}

	checkCtx, checkCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer checkCancel()
	o := HotSeatOutcome{Fans: cfg.Fans, Seats: len(seats), Successes: int(successes.Load()), Conflicts: int(conflicts.Load()), Other: int(other.Load())}
	for _, s := range seats {
		o.Wins = append(o.Wins, wins[s.ID])
	}
	free, err := availableSeats(checkCtx, c, fx.ConcertID, fx.Dates[0].Day)
	if err != nil {
		o.SeatErr = err
	}
	for _, s := range free {
		if wins[s.ID] > 0 {
			o.SeatsListed++
		}
	}
	r.addChecks(CheckHotSeat(o)...)
	if n := cfg.Fans - r.Winners; n > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d tokens of this run stay ACTIVE until TOKEN_IDLE_TTL passes (no payment frees them)", n))
	}
	if runCtx.Err() != nil && !errors.Is(ctx.Err(), context.Canceled) {
		return r, fmt.Errorf("hot-seat: the burst did not finish in time: %w", runCtx.Err())
	}
	return r, ctx.Err()
}
