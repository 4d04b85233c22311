package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"
)

// JourneyConfig tunes RunJourney.
type JourneyConfig struct {
	Common
	Fans int // default 1,000; the concert has a seat for each
	// Think is the mean pause of a fan between two steps (uniform from
	// half to one and a half of it); default 100ms.
	Think time.Duration
	// Poll is the interval of a waiting fan's token polls; default 250ms.
	Poll time.Duration
	// MaxWait bounds a fan's wait in line; default 2 minutes.
	MaxWait time.Duration
	Price   int64
}

// RunJourney: each fan does what a person does — takes a token, polls until
// it is ACTIVE, looks at the dates, at the seats of one, tops up the
// wallet, holds a seat (another one if it is taken) and pays — with think
// time between the steps; closed loop starts every fan at once, open loop
// Rate fans/s. Verdict: seats sold (gone from available-seats) = payments
// = points debited.
func RunJourney(ctx context.Context, c *Client, cfg JourneyConfig) (*Result, error) {
	if cfg.Fans <= 0 {
		cfg.Fans = 1000
	}
	if cfg.Think < 0 {
		cfg.Think = 0
	} else if cfg.Think == 0 {
		cfg.Think = 100 * time.Millisecond
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 2 * time.Minute
	}
	if cfg.Price <= 0 {
		cfg.Price = 1000
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	if q, err := c.ReadQueue(ctx); err == nil && q.Waiting > 0 {
		return nil, fmt.Errorf("%w: %d tokens already WAIT in line (an earlier queue-surge?); the journey's fans would "+
			"queue behind them until they leave (WAIT_IDLE_TTL without a poll): wait, or start on an empty database",
			ErrTokensNotActive, q.Waiting)
	}
	const perDate = 50
	fx, err := Setup(ctx, c, SetupConfig{
		Title: "concertbench journey " + time.Now().UTC().Format(time.RFC3339Nano),
		Dates: (cfg.Fans + perDate - 1) / perDate, SeatsPerDate: perDate, Users: cfg.Fans, Price: cfg.Price,
		NoCharge: true, NoToken: true, Concurrency: cfg.SetupConcurrency, OnProgress: cfg.OnProgress,
	})
	if err != nil {
		return nil, err
	}
	totalSeats := len(fx.Dates) * perDate
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	charged := make([]int64, cfg.Fans)
	paid := make([]bool, cfg.Fans)

	cfg.mark(true)
	start := time.Now().Add(20 * time.Millisecond)
	m := newMeter(start, "journey", "token", "poll", "dates", "seats", "charge", "hold", "pay", "cancel")
	opJourney, opToken, opPoll, opDates, opSeats, opCharge, opHold, opPay, opCancel :=
		m.op(0), m.op(1), m.op(2), m.op(3), m.op(4), m.op(5), m.op(6), m.op(7), m.op(8)
	var payments, done, lastPay atomic.Int64
	stopProgress := startProgress(cfg.OnProgress, start, func(el time.Duration) Progress {
		return Progress{Phase: "journey", Done: done.Load(), Total: int64(cfg.Fans), Elapsed: el}
	})
	limit := 5*time.Minute + cfg.MaxWait + time.Duration(float64(cfg.Fans)/max(cfg.Rate, 1)*float64(time.Second))
	runCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()

	runArrivals(runCtx, cfg.Fans, cfg.Fans, cfg.Rate, start, func(worker, unit int, intended time.Time) {
		defer done.Add(1)
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(unit)))
		think := func() {
			if cfg.Think > 0 {
				time.Sleep(time.Duration((0.5 + rng.Float64()) * float64(cfg.Think)))
			}
		}
		u := fx.Users[unit]
		w := c.newConn()
		tok, status, code, err := w.issueToken(u.ID)
		opToken.observe(worker, intended, status)
		if err != nil || status != 200 {
			m.failAt("token", status, code, err)
			return
		}
		auth := []byte("Bearer " + tok.Token)
		waitUntil := time.Now().Add(cfg.MaxWait)
		for tok.Status == "WAIT" {
			if time.Now().After(waitUntil) || runCtx.Err() != nil {
				m.fail("token: still WAIT after " + cfg.MaxWait.String())
				return
			}
			time.Sleep(cfg.Poll)
			t0 := time.Now()
			tok, status, code, err = w.pollToken(u.ID, auth)
			opPoll.observe(worker, t0, status)
			if err != nil || status != 200 {
				m.failAt("poll", status, code, err)
				return
			}
		}
		if tok.Status != "ACTIVE" {
			m.fail("token: " + tok.Status)
			return
		}
		// Look at the dates, then at the seats of one; when the date sells
		// out meanwhile, look at the dates again, as a person would.
		var id, price int64
		held := false
		for look := 0; look < 10 && !held && runCtx.Err() == nil; look++ {
			think()
			var avail []struct {
				ConcertDate    string `json:"concertDate"`
				AvailableSeats int    `json:"availableSeats"`
			}
			t0 := time.Now()
			err = c.callAs(runCtx, u.ID, "GET", "/concerts/"+i64toa(fx.ConcertID)+"/available-date", "", nil, nil, &avail, 200)
			opDates.observe(worker, t0, statusOf(err))
			if err != nil {
				m.fail("dates: " + errKey(err))
				return
			}
			var days []string
			for _, d := range avail {
				if d.AvailableSeats > 0 {
					days = append(days, d.ConcertDate)
				}
			}
			if len(days) == 0 {
				m.fail("dates: none with a free seat")
				return
			}
			day := days[rng.IntN(len(days))]
			if len(day) > 10 {
				day = day[:10]
			}
			for try := 0; try < 5; try++ {
				think()
				t1 := time.Now()
				var seats []Seat
				err := c.callAs(runCtx, u.ID, "GET", "/concerts/"+i64toa(fx.ConcertID)+"/available-seats?date="+url.QueryEscape(day), "", nil, nil, &seatsAnswer{&seats}, 200)
				opSeats.observe(worker, t1, statusOf(err))
				if err != nil {
					m.fail("seats: " + errKey(err))
					return
				}
				if len(seats) == 0 {
					break // sold out meanwhile: back to the dates
				}
				seat := seats[rng.IntN(len(seats))]
				price = cmp0(seat.Price, fx.Price)
				if charged[unit] == 0 {
					think()
					t2 := time.Now()
					_, status, code, err := w.charge(u.ID, price, "cb-jc-"+runID+"-"+itoa(unit))
					opCharge.observe(worker, t2, status)
					if err != nil || status != 200 {
						m.failAt("charge", status, code, err)
						return
					}
					charged[unit] = price
				}
				think()
				t3 := time.Now()
				hid, status, code, err := w.hold(auth, u.ID, seat.ID)
				opHold.observe(worker, t3, status)
				if err == nil && status == 200 {
					id, held = hid, true
					break
				}
				if err == nil && status == 409 && code == "SEAT_UNAVAILABLE" {
					continue
				}
				m.failAt("hold", status, code, err)
				return
			}
		}
		if !held {
			m.fail("hold: no free seat found")
			return
		}
		think()
		key := "cb-jp-" + runID + "-" + itoa(unit)
		for try := 0; try < 5; try++ {
			t4 := time.Now()
			_, status, code, err := w.pay(auth, u.ID, id, price, key)
			opPay.observe(worker, t4, status)
			if err == nil && status == 200 {
				paid[unit] = true
				payments.Add(1)
				opJourney.observe(worker, intended, 200)
				at := int64(time.Since(start))
				for {
					old := lastPay.Load()
					if at <= old || lastPay.CompareAndSwap(old, at) {
						break
					}
				}
				return
			}
			m.failAt("pay", status, code, err)
			if err == nil && status != 503 && !(status == 409 && code == "PAYMENT_IN_PROGRESS") {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		t5 := time.Now()
		status, code, err = w.cancel(auth, u.ID, id)
		opCancel.observe(worker, t5, status)
		if err != nil || status != 200 {
			m.failAt("cancel", status, code, err)
		}
	})
	elapsed := time.Since(start)
	stopProgress()
	cfg.mark(false)

	r := &Result{
		Scenario: "journey", Mode: cfg.mode(), OfferedRate: cfg.Rate, Users: cfg.Fans, Fans: cfg.Fans,
		Dates: len(fx.Dates), SeatsPerDate: perDate, Winners: int(payments.Load()),
		Params: map[string]string{"fans": itoa(cfg.Fans), "think": dtoa(cfg.Think), "poll": dtoa(cfg.Poll),
			"seats": itoa(totalSeats)},
		ElapsedSeconds: elapsed.Seconds(),
	}
	if cfg.Rate > 0 {
		r.Params["rate"] = rateString(cfg.Rate) + " fans/s"
	}
	window := elapsed
	if lp := time.Duration(lastPay.Load()); lp > 0 {
		window = lp
	}
	finishResult(r, c, m, window)
	r.Throughput, r.ThroughputUnit = float64(payments.Load())/window.Seconds(), "journeys/s"
	if o := r.Op("hold"); o != nil {
		r.HoldLatency = o.Latency
		r.Holds = o.Status["200"]
		r.Attempts = o.Count
	}

	checkCtx, checkCancel := context.WithTimeout(context.Background(), time.Minute)
	defer checkCancel()
	o := JourneyOutcome{Fans: cfg.Fans, Payments: int(payments.Load()), Price: fx.Price}
	left, err := seatsLeft(checkCtx, c, fx.ConcertID, fx.Dates, 16)
	if err != nil {
		o.SeatsErr = err
	} else {
		n := 0
		for _, ids := range left {
			n += len(ids)
		}
		o.SeatsSold = totalSeats - n
	}
	var wrong atomic.Int64
	var debits atomic.Int64
	var firstErr atomic.Pointer[error]
	bad := make([]string, 0)
	badCh := make(chan string, cfg.Fans)
	runArrivals(checkCtx, cfg.Fans, 32, 0, time.Now(), func(worker, unit int, intended time.Time) {
		w := c.newConn()
		bal, status, code, err := w.balance(fx.Users[unit].ID)
		if err != nil || status != 200 {
			e := fmt.Errorf("GET /customers/point: %s", errOr(status, code, err))
			firstErr.CompareAndSwap(nil, &e)
			return
		}
		debits.Add(charged[unit] - bal)
		want := charged[unit]
		if paid[unit] {
			want -= fx.Price
		}
		if bal != want {
			wrong.Add(1)
			badCh <- fmt.Sprintf("user %d: balance %d, want %d", fx.Users[unit].ID, bal, want)
		}
	})
	close(badCh)
	for b := range badCh {
		bad = append(bad, b)
	}
	o.Debits, o.Wrong = debits.Load(), bad
	if e := firstErr.Load(); e != nil {
		o.DebitsErr = *e
	}
	r.addChecks(CheckJourney(o)...)
	if runCtx.Err() != nil && ctx.Err() == nil {
		return r, fmt.Errorf("journey: not over after %s: %w", limit, runCtx.Err())
	}
	return r, ctx.Err()
}

// seatsAnswer decodes available-seats into a flat list of seats.
type seatsAnswer struct{ seats *[]Seat }

func (s *seatsAnswer) UnmarshalJSON(b []byte) error {
	var out []struct {
		Seats []struct {
			SeatID int64 `json:"seatId"`
			SeatNo int   `json:"seatNo"`
			Price  int64 `json:"price"`
		} `json:"seats"`
	}
	if err := jsonUnmarshal(b, &out); err != nil {
		return err
	}
	for _, o := range out {
		for _, x := range o.Seats {
			*s.seats = append(*s.seats, Seat{ID: x.SeatID, No: x.SeatNo, Price: x.Price})
		}
	}
	return nil
}

// statusOf is the HTTP status a JSON call got: 200 if err is nil.
func statusOf(err error) int {
	if err == nil {
		return 200
	}
	return errStatus(err)
}
