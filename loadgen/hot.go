package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// HotConfig tunes RunHot.
type HotConfig struct {
	// Workers is the number of fans racing at once; default 500.
	Workers int
	// MaxDuration bounds the race; default 2 minutes.
	MaxDuration time.Duration
	// MaxTries bounds the seats one fan tries; default 200.
	MaxTries int
	// Seed for the seat choice; 0 picks one.
	Seed uint64
	// OnProgress, if set, is called about four times a second.
	OnProgress func(Progress)
}

// hotTally is one worker's count, merged at the end.
type hotTally struct {
	failures
	attempts, holds, conflicts int64
}

// RunHot runs the on-sale on the first date of fx: every user of fx is a
// fan; Workers fans at a time each look at the free seats, try a random
// one, and go on until they hold one or none is left. A fan who holds a
// seat pays for it at once (POST /payments with amount = price and an
// Idempotency-Key, resent with the same key after a transport error).
//
// The result's Violations name any oversell (more winners than seats, or a
// seat paid by two fans) and any undersell (seats left unsold once every
// fan has given up).
func RunHot(ctx context.Context, c *Client, fx *Fixture, cfg HotConfig) (*Result, error) {
	if len(fx.Users) == 0 || len(fx.Dates) == 0 {
		return nil, errors.New("hot: empty fixture")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 500
	}
	cfg.Workers = min(cfg.Workers, len(fx.Users))
	if cfg.MaxDuration <= 0 {
		cfg.MaxDuration = 2 * time.Minute
	}
	if cfg.MaxTries <= 0 {
		cfg.MaxTries = 200
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	date := fx.Dates[0]
	seatPrice := make(map[int64]int64, len(date.Seats))
	for _, s := range date.Seats {
		seatPrice[s.ID] = cmp0(s.Price, fx.Price)
	}
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)

	holdLat, payLat := NewRecorder(), NewRecorder()
	tallies := make([]hotTally, cfg.Workers)
	var (
		mu          sync.Mutex
		soldTo      = map[int64][]int64{} // seat → paying users
		lastHold    time.Time
		lastPay     time.Time
		winners     atomic.Int64
		liveErrors  atomic.Int64
		nextFan     atomic.Int64
		availCalls  atomic.Int64
		availErrors atomic.Int64
	)
	ctx, cancel := context.WithTimeout(ctx, cfg.MaxDuration)
	defer cancel()

	start := time.Now()
	stopProgress := startProgress(cfg.OnProgress, start, func(el time.Duration) Progress {
		return Progress{Phase: "hot", Done: winners.Load(), Total: int64(len(date.Seats)), Errors: liveErrors.Load(), Elapsed: el}
	})
	begin := make(chan struct{})
	var wg sync.WaitGroup
	for wi := 0; wi < cfg.Workers; wi++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := &tallies[wi]
			rng := rand.New(rand.NewPCG(cfg.Seed, uint64(wi)))
			w := c.newConn()
			<-begin
			for ctx.Err() == nil {
				f := nextFan.Add(1) - 1
				if f >= int64(len(fx.Users)) {
					return
				}
				fan := &fx.Users[f]
			tries:
				for try := 0; try < cfg.MaxTries && ctx.Err() == nil; try++ {
					availCalls.Add(1)
					free, err := availableSeats(ctx, c, fx.ConcertID, date.Day)
					if err != nil {
						availErrors.Add(1)
						t.fail("available-seats: " + errKey(err))
						liveErrors.Add(1)
						continue
					}
					if len(free) == 0 {
						break // sold out (or all held): this fan lost
					}
					seat := free[rng.IntN(len(free))]
					t.attempts++
					t0 := time.Now()
					id, status, code, err := w.hold(fan.auth, fan.ID, seat.ID)
					holdLat.Record(wi, time.Since(t0))
					switch {
					case err != nil:
						t.fail(transportKind(err))
						liveErrors.Add(1)
						continue
					case status == 409 && code == "SEAT_UNAVAILABLE":
						t.conflicts++
						continue
					case status != 200:
						t.fail(outcomeKey(status, code))
						liveErrors.Add(1)
						continue
					}
					t.holds++
					mu.Lock()
					lastHold = time.Now()
					mu.Unlock()
					price := seatPrice[seat.ID]
					if price == 0 {
						price = cmp0(seat.Price, fx.Price)
					}
					key := "concertbench-" + runID + "-" + strconv.FormatInt(fan.ID, 10)
					for ptry := 0; ptry < 3; ptry++ {
						t1 := time.Now()
						err := pay(ctx, c, fan.Token, id, price, key)
						payLat.Record(wi, time.Since(t1))
						if err == nil {
							winners.Add(1)
							mu.Lock()
							lastPay = time.Now()
							soldTo[seat.ID] = append(soldTo[seat.ID], fan.ID)
							mu.Unlock()
							break tries
						}
						t.fail("payment: " + errKey(err))
						liveErrors.Add(1)
						var apiErr *APIError
						if errors.As(err, &apiErr) && apiErr.Status != 503 {
							break tries // answered: resending will not change it
						}
					}
					break
				}
			}
		}()
	}
	close(begin)
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()

	r := &Result{
		Scenario:       "hot",
		Machine:        Machine(),
		Target:         c.Target(),
		Users:          len(fx.Users),
		Dates:          1,
		SeatsPerDate:   len(date.Seats),
		Fans:           len(fx.Users),
		Workers:        cfg.Workers,
		Winners:        int(winners.Load()),
		ElapsedSeconds: elapsed.Seconds(),
		Errors:         map[string]int64{},
	}
	for i := range tallies {
		t := &tallies[i]
		r.Attempts += t.attempts
		r.Holds += t.holds
		r.Conflicts += t.conflicts
		for k, v := range t.errors {
			r.Errors[k] += v
		}
	}
	if !lastHold.IsZero() {
		r.AllHeldSeconds = lastHold.Sub(start).Seconds()
	}
	if !lastPay.IsZero() {
		r.SellOutSeconds = lastPay.Sub(start).Seconds()
	}
	window := elapsed.Seconds()
	if r.SellOutSeconds > 0 {
		window = r.SellOutSeconds
	}
	r.HoldsPerSec = float64(r.Holds) / window
	r.AttemptsPerSec = float64(r.Attempts) / window
	r.HoldLatency = holdLat.Summary()
	pl := payLat.Summary()
	r.PaymentLatency = &pl

	// What the server says is left, asked once the race is over.
	checkCtx, checkCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer checkCancel()
	left, err := availableSeats(checkCtx, c, fx.ConcertID, date.Day)
	if err != nil {
		r.SeatsLeft = -1
		r.Violations = append(r.Violations, fmt.Sprintf("CHECK FAILED: available-seats after the race: %v", err))
	} else {
		r.SeatsLeft = len(left)
	}
	r.SoldOut = r.Winners == len(date.Seats) && r.SeatsLeft == 0
	r.Violations = append(r.Violations, hotViolations(len(date.Seats), r.Winners, soldTo)...)
	if r.Winners < len(date.Seats) {
		r.Violations = append(r.Violations, fmt.Sprintf("UNDERSOLD: %d winners for %d seats (%d seats still free, %d errors)",
			r.Winners, len(date.Seats), r.SeatsLeft, r.ErrorCount()))
	}
	return r, nil
}

// hotViolations checks the oversell invariants of an on-sale: no more
// winners than seats, no seat paid by two fans.
func hotViolations(seats, winners int, soldTo map[int64][]int64) []string {
	var v []string
	if winners > seats {
		v = append(v, fmt.Sprintf("OVERSOLD: %d winners for %d seats", winners, seats))
	}
	for seat, users := range soldTo {
		if len(users) > 1 {
			v = append(v, fmt.Sprintf("OVERSOLD: seat %d paid by %d fans %v", seat, len(users), users))
		}
	}
	return v
}

// pay sends POST /payments for a held reservation.
func pay(ctx context.Context, c *Client, token string, reservationID, amount int64, key string) error {
	return c.call(ctx, "POST", "/payments", token, map[string]string{"Idempotency-Key": key},
		map[string]int64{"reservationId": reservationID, "amount": amount}, nil, 200)
}

// errKey names an error of a JSON call for the error table.
func errKey(err error) string {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return outcomeKey(apiErr.Status, apiErr.Code)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return "deadline"
	}
	return transportKind(err)
}

func cmp0(v, fallback int64) int64 {
	if v != 0 {
		return v
	}
	return fallback
}
