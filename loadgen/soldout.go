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

// SoldOutConfig tunes RunSoldOut.
type SoldOutConfig struct {
	Common
	Fans  int // default 20,000
	Dates int // default 100
	Seats int // per date; default 50
	Price int64
	// Workers is the closed loop's fans in flight at once; default 1,000.
	Workers int
	// MaxTries bounds the holds one fan tries; default 100.
	MaxTries int
}

// soldOutDate is what the fans of one date know of its seats: seats seen
// taken are skipped until a fresh available-seats says otherwise.
type soldOutDate struct {
	mu    sync.Mutex
	seats []Seat
	taken []bool
	left  int
}

func (d *soldOutDate) pick(rng *rand.Rand) (Seat, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.left == 0 {
		return Seat{}, false
	}
	i := rng.IntN(len(d.seats))
	for d.taken[i] {
		i = (i + 1) % len(d.seats)
	}
	return d.seats[i], true
}

func (d *soldOutDate) markTaken(id int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, s := range d.seats {
		if s.ID == id && !d.taken[i] {
			d.taken[i] = true
			d.left--
		}
	}
}

// refresh replaces what the fans know with the free seats listed.
func (d *soldOutDate) refresh(free []Seat) {
	d.mu.Lock()
	defer d.mu.Unlock()
	listed := make(map[int64]bool, len(free))
	for _, s := range free {
		listed[s.ID] = true
	}
	d.left = 0
	for i, s := range d.seats {
		d.taken[i] = !listed[s.ID]
		if !d.taken[i] {
			d.left++
		}
	}
}

// RunSoldOut: Fans fans race for every seat of Dates dates of Seats seats,
// fan i on date i%Dates: each tries free seats until it holds one or the
// date is sold out, and pays at once. At the end holds = payments = seats,
// no seat is sold twice, and available-seats offers nothing anywhere. The
// headline is durable holds/s: successful holds per second until the last
// seat was held.
func RunSoldOut(ctx context.Context, c *Client, cfg SoldOutConfig) (*Result, error) {
	if cfg.Fans <= 0 {
		cfg.Fans = 20000
	}
	if cfg.Dates <= 0 {
		cfg.Dates = 100
	}
	if cfg.Seats <= 0 {
		cfg.Seats = 50
	}
	if cfg.Price <= 0 {
		cfg.Price = 1000
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1000
	}
	if cfg.MaxTries <= 0 {
		cfg.MaxTries = 100
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	if cfg.Fans < cfg.Dates*cfg.Seats {
		return nil, fmt.Errorf("sold-out: %d fans cannot buy %d dates × %d seats: give it at least as many fans as seats", cfg.Fans, cfg.Dates, cfg.Seats)
	}
	if err := PreflightTokens(ctx, c, "sold-out", cfg.Fans, cfg.ActiveTokens); err != nil {
		return nil, err
	}
	fx, err := Setup(ctx, c, SetupConfig{
		Title: "concertbench sold-out " + time.Now().UTC().Format(time.RFC3339Nano),
		Dates: cfg.Dates, SeatsPerDate: cfg.Seats, Users: cfg.Fans, Price: cfg.Price, Charge: 2 * cfg.Price,
		Concurrency: cfg.SetupConcurrency, TokenWait: cfg.TokenWait, OnProgress: cfg.OnProgress,
	})
	if err != nil {
		return nil, err
	}
	dates := make([]*soldOutDate, len(fx.Dates))
	for i, d := range fx.Dates {
		dates[i] = &soldOutDate{seats: d.Seats, taken: make([]bool, len(d.Seats)), left: len(d.Seats)}
	}
	totalSeats := cfg.Dates * cfg.Seats
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	if cfg.Rate <= 0 {
		warmConns(ctx, c, min(cfg.Workers, cfg.Fans), func(i int) int64 { return fx.Users[i].ID })
	}

	cfg.mark(true)
	start := time.Now().Add(20 * time.Millisecond)
	m := newMeter(start, "hold", "pay", "seats", "cancel")
	opHold, opPay, opSeats, opCancel := m.op(0), m.op(1), m.op(2), m.op(3)
	var (
		holds, kept, payments, conflicts atomic.Int64
		lastHold, lastPay                atomic.Int64 // ns after start
		mu                               sync.Mutex
		paidBy                           = map[int64][]int64{}
	)
	stamp := func(a *atomic.Int64) {
		at := int64(time.Since(start))
		for {
			old := a.Load()
			if at <= old || a.CompareAndSwap(old, at) {
				return
			}
		}
	}
	stopProgress := startProgress(cfg.OnProgress, start, func(el time.Duration) Progress {
		return Progress{Phase: "sold-out", Done: payments.Load(), Total: int64(totalSeats), Elapsed: el}
	})
	limit := 5*time.Minute + time.Duration(float64(cfg.Fans)/max(cfg.Rate, 1)*float64(time.Second))
	runCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	runArrivals(runCtx, cfg.Fans, cfg.Workers, cfg.Rate, start, func(worker, unit int, intended time.Time) {
		fan := &fx.Users[unit]
		di := unit % len(dates)
		date := dates[di]
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(unit)))
		w := c.newConn()
		sent := intended
		for try := 0; try < cfg.MaxTries && runCtx.Err() == nil; try++ {
			seat, ok := date.pick(rng)
			if !ok {
				// Every seat of the date seen taken: ask the server.
				t0 := time.Now()
				free, err := availableSeats(runCtx, c, fx.ConcertID, fx.Dates[di].Day)
				status := 200
				if err != nil {
					status = errStatus(err)
					m.fail("seats: " + errKey(err))
				}
				opSeats.observe(worker, t0, status)
				if err != nil {
					continue
				}
				if len(free) == 0 {
					return // sold out: this fan lost
				}
				date.refresh(free)
				continue
			}
			id, status, code, err := w.hold(fan.auth, fan.ID, seat.ID)
			opHold.observe(worker, sent, status)
			sent = time.Now()
			switch {
			case err != nil:
				m.failAt("hold", 0, "", err)
				continue
			case status == 409 && code == "SEAT_UNAVAILABLE":
				conflicts.Add(1)
				date.markTaken(seat.ID)
				continue
			case status != 200:
				m.failAt("hold", status, code, nil)
				continue
			}
			holds.Add(1)
			kept.Add(1)
			stamp(&lastHold)
			date.markTaken(seat.ID)
			price := cmp0(seat.Price, fx.Price)
			key := "concertbench-so-" + runID + "-" + strconv.FormatInt(fan.ID, 10)
			for ptry := 0; ptry < 5; ptry++ {
				t1 := time.Now()
				_, pstatus, pcode, perr := w.pay(fan.auth, fan.ID, id, price, key)
				opPay.observe(worker, t1, pstatus)
				if perr == nil && pstatus == 200 {
					payments.Add(1)
					stamp(&lastPay)
					mu.Lock()
					paidBy[seat.ID] = append(paidBy[seat.ID], fan.ID)
					mu.Unlock()
					return
				}
				m.failAt("pay", pstatus, pcode, perr)
				if perr == nil && pstatus != 503 && !(pstatus == 409 && pcode == "PAYMENT_IN_PROGRESS") {
					break // answered: resending will not change it
				}
				time.Sleep(50 * time.Millisecond)
			}
			// The payment was refused: free the seat for the others.
			t2 := time.Now()
			cstatus, ccode, cerr := w.cancel(fan.auth, fan.ID, id)
			opCancel.observe(worker, t2, cstatus)
			if cerr == nil && cstatus == 200 {
				kept.Add(-1)
				date.refresh(nil) // unknown again: ask the server next
			} else {
				m.failAt("cancel", cstatus, ccode, cerr)
			}
			return
		}
	})
	elapsed := time.Since(start)
	stopProgress()
	cfg.mark(false)

	r := &Result{
		Scenario: "sold-out", Mode: cfg.mode(), OfferedRate: cfg.Rate,
		Users: cfg.Fans, Fans: cfg.Fans, Dates: cfg.Dates, SeatsPerDate: cfg.Seats, Workers: cfg.Workers,
		Params: map[string]string{"fans": itoa(cfg.Fans), "dates": itoa(cfg.Dates), "seats per date": itoa(cfg.Seats)},
		Holds:  holds.Load(), Conflicts: conflicts.Load(), Winners: int(payments.Load()),
		AllHeldSeconds: time.Duration(lastHold.Load()).Seconds(), SellOutSeconds: time.Duration(lastPay.Load()).Seconds(),
		ElapsedSeconds: elapsed.Seconds(),
	}
	if cfg.Rate > 0 {
		r.Params["rate"] = rateString(cfg.Rate) + " fans/s"
	} else {
		r.Params["fans in flight"] = itoa(cfg.Workers)
	}
	window := elapsed
	if r.SellOutSeconds > 0 {
		window = time.Duration(lastPay.Load())
	}
	finishResult(r, c, m, window)
	if o := r.Op("hold"); o != nil {
		r.Attempts = o.Count
		r.HoldLatency = o.Latency
	}
	if o := r.Op("pay"); o != nil {
		pl := o.Latency
		r.PaymentLatency = &pl
	}
	if r.AllHeldSeconds > 0 {
		r.HoldsPerSec = float64(r.Holds) / r.AllHeldSeconds
	}
	r.AttemptsPerSec = float64(r.Attempts) / window.Seconds()
	r.Throughput, r.ThroughputUnit = r.HoldsPerSec, "durable holds/s"

	checkCtx, checkCancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer checkCancel()
	o := SoldOutOutcome{Seats: totalSeats, Holds: int(kept.Load()), Payments: int(payments.Load()), PaidBy: paidBy, Dates: cfg.Dates}
	left, err := seatsLeft(checkCtx, c, fx.ConcertID, fx.Dates, 16)
	if err != nil {
		o.LeftErr = err
	} else {
		o.Left = map[string]int{}
		for day, ids := range left {
			o.Left[day] = len(ids)
		}
	}
	r.SeatsLeft = 0
	for _, n := range o.Left {
		r.SeatsLeft += n
	}
	r.SoldOut = r.Winners == totalSeats && r.SeatsLeft == 0
	r.addChecks(CheckSoldOut(o)...)
	if n := cfg.Fans - r.Winners; n > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d tokens of losing fans stay ACTIVE until TOKEN_IDLE_TTL passes", n))
	}
	if runCtx.Err() != nil && ctx.Err() == nil {
		return r, fmt.Errorf("sold-out: not over after %s: %w", limit, runCtx.Err())
	}
	return r, ctx.Err()
}

// errStatus is the HTTP status of an APIError, else 0.
func errStatus(err error) int {
	var e *APIError
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}
