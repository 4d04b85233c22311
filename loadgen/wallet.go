package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// WalletStormConfig tunes RunWalletStorm.
type WalletStormConfig struct {
	Common
	Wallets  int           // default 8
	Workers  int           // closed loop concurrency; default 64
	Duration time.Duration // default 10s
	// Operations is the most operations in open loop (Rate × Duration
	// by default).
	Seats int   // seats on sale for the payments; default 4,000
	Price int64 // default 1000
	// PayShare is the share of operations that are hold-then-pay (the
	// rest are charges); default 0.3.
	PayShare float64
	// ReplayShare is the share of successful charges sent again with the
	// same Idempotency-Key and body; default 0.1.
	ReplayShare float64
}

// stormWallet is the run's knowledge of one wallet.
type stormWallet struct {
	mu   sync.Mutex
	id   int64
	auth []byte // "Bearer <token>" of an ACTIVE token, nil if none known
	WalletOutcome
}

func (s *stormWallet) seen(balance int64) {
	s.mu.Lock()
	s.MinSeen = min(s.MinSeen, balance)
	s.mu.Unlock()
}

// RunWalletStorm: Workers clients charge and pay on a few wallets at once
// for Duration. Charges carry an Idempotency-Key and are resent with it
// until answered; some are replayed on purpose. Payments hold a seat
// first, and a payment expires the user's token, so concurrent operations
// of one user keep taking new tokens. At the end every balance must be
// exactly its charges less its payments, money conserved over all
// wallets, no balance ever negative, and no replay may have changed one.
func RunWalletStorm(ctx context.Context, c *Client, cfg WalletStormConfig) (*Result, error) {
	if cfg.Wallets <= 0 {
		cfg.Wallets = 8
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Seats <= 0 {
		cfg.Seats = 4000
	}
	if cfg.Price <= 0 {
		cfg.Price = 1000
	}
	if cfg.PayShare <= 0 {
		cfg.PayShare = 0.3
	}
	if cfg.ReplayShare < 0 {
		cfg.ReplayShare = 0
	} else if cfg.ReplayShare == 0 {
		cfg.ReplayShare = 0.1
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	if err := PreflightTokens(ctx, c, "wallet-storm", cfg.Wallets, cfg.ActiveTokens); err != nil {
		return nil, err
	}
	const perDate = 50
	dates := (cfg.Seats + perDate - 1) / perDate
	fx, err := Setup(ctx, c, SetupConfig{
		Title: "concertbench wallet-storm " + time.Now().UTC().Format(time.RFC3339Nano),
		Dates: dates, SeatsPerDate: perDate, Users: cfg.Wallets, Price: cfg.Price, NoCharge: true,
		Concurrency: cfg.SetupConcurrency, TokenWait: cfg.TokenWait, OnProgress: cfg.OnProgress,
	})
	if err != nil {
		return nil, err
	}
	var seats []Seat
	for _, d := range fx.Dates {
		seats = append(seats, d.Seats...)
	}
	wallets := make([]*stormWallet, cfg.Wallets)
	for i, u := range fx.Users {
		wallets[i] = &stormWallet{id: u.ID, auth: u.auth}
		wallets[i].UserID = u.ID
	}
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	var nextSeat, seq, opsDone, refusals atomic.Int64

	cfg.mark(true)
	start := time.Now().Add(20 * time.Millisecond)
	end := start.Add(cfg.Duration)
	m := newMeter(start, "charge", "pay", "hold", "token", "cancel", "replay")
	opCharge, opPay, opHold, opToken, opCancel, opReplay := m.op(0), m.op(1), m.op(2), m.op(3), m.op(4), m.op(5)
	runCtx, cancel := context.WithDeadline(ctx, end.Add(time.Minute))
	defer cancel()
	stopProgress := startProgress(cfg.OnProgress, start, func(el time.Duration) Progress {
		return Progress{Phase: "wallet-storm", Done: opsDone.Load(), Elapsed: el, Duration: cfg.Duration}
	})

	// token returns an ACTIVE token of wallet s, asking for one if none is
	// known; stale is the token a request just found expired.
	token := func(w *conn, worker int, s *stormWallet, stale []byte) []byte {
		s.mu.Lock()
		if s.auth != nil && !bytes.Equal(s.auth, stale) {
			a := s.auth
			s.mu.Unlock()
			return a
		}
		s.auth = nil
		s.mu.Unlock()
		for try := 0; try < 50 && runCtx.Err() == nil; try++ {
			t0 := time.Now()
			tok, status, code, err := w.issueToken(s.id)
			opToken.observe(worker, t0, status)
			if err != nil || status != 200 {
				m.failAt("token", status, code, err)
				time.Sleep(20 * time.Millisecond)
				continue
			}
			if tok.Status != "ACTIVE" {
				m.fail("token: WAIT (too few free ACTIVE_TOKENS)")
				time.Sleep(100 * time.Millisecond)
				continue
			}
			a := []byte("Bearer " + tok.Token)
			s.mu.Lock()
			s.auth = a
			s.mu.Unlock()
			return a
		}
		return nil
	}

	doCharge := func(w *conn, worker int, rng *rand.Rand, s *stormWallet, intended time.Time) {
		amount := int64(100 + rng.IntN(1900))
		key := "cb-ws-" + runID + "-" + strconv.FormatInt(seq.Add(1), 10)
		sent := intended
		for try := 0; try < 10 && runCtx.Err() == nil; try++ {
			bal, status, code, err := w.charge(s.id, amount, key)
			opCharge.observe(worker, sent, status)
			if err == nil && status == 200 {
				s.mu.Lock()
				s.Charged += amount
				s.MinSeen = min(s.MinSeen, bal)
				s.mu.Unlock()
				if rng.Float64() < cfg.ReplayShare {
					t1 := time.Now()
					again, rstatus, rcode, rerr := w.charge(s.id, amount, key)
					opReplay.observe(worker, t1, rstatus)
					s.mu.Lock()
					s.Replays++
					if rerr != nil || rstatus != 200 || again != bal {
						s.ReplayMismatches++
					}
					if rerr == nil && rstatus == 200 && again != bal {
						// A server that ignores the key charged again: count
						// it, so the balances show only this one failure.
						s.Charged += amount
						s.MinSeen = min(s.MinSeen, again)
					}
					if rerr != nil || rstatus >= 500 {
						// Unanswered (the run's end cut it, say): a server
						// that ignores the key may have charged again.
						s.Unresolved += amount
					}
					s.mu.Unlock()
					if rerr != nil || rstatus != 200 {
						m.failAt("replay", rstatus, rcode, rerr)
					}
				}
				return
			}
			m.failAt("charge", status, code, err)
			if err == nil && status != 503 {
				return // refused: nothing changed
			}
			time.Sleep(20 * time.Millisecond)
			sent = time.Now()
		}
		s.mu.Lock()
		s.Unresolved += amount
		s.mu.Unlock()
	}

	// cancelHold frees a held seat, with a fresh token if need be.
	cancelHold := func(w *conn, worker int, s *stormWallet, auth []byte, id int64) {
		for try := 0; try < 3 && auth != nil; try++ {
			t0 := time.Now()
			status, code, err := w.cancel(auth, s.id, id)
			opCancel.observe(worker, t0, status)
			if err == nil && status == 200 {
				return
			}
			if err == nil && status == 401 {
				auth = token(w, worker, s, auth)
				continue
			}
			m.failAt("cancel", status, code, err)
			return
		}
	}

	doPay := func(w *conn, worker int, s *stormWallet, intended time.Time) bool {
		si := nextSeat.Add(1) - 1
		if si >= int64(len(seats)) {
			return false // no seat left to buy: charge instead
		}
		seat := seats[si]
		price := cmp0(seat.Price, fx.Price)
		auth := token(w, worker, s, nil)
		var id int64
		sent := intended
		for try := 0; ; try++ {
			if auth == nil || try == 3 || runCtx.Err() != nil {
				return true
			}
			hid, status, code, err := w.hold(auth, s.id, seat.ID)
			opHold.observe(worker, sent, status)
			sent = time.Now()
			if err == nil && status == 200 {
				id = hid
				break
			}
			switch {
			case err == nil && status == 401: // a concurrent payment expired the token
				refusals.Add(1)
				auth = token(w, worker, s, auth)
				continue
			case err == nil && status == 409 && code == "HOLD_LIMIT":
				refusals.Add(1)
				return true
			}
			m.failAt("hold", status, code, err)
			return true
		}
		key := "cb-wp-" + runID + "-" + strconv.FormatInt(id, 10)
		for try := 0; try < 10 && runCtx.Err() == nil; try++ {
			t1 := time.Now()
			bal, status, code, err := w.pay(auth, s.id, id, price, key)
			opPay.observe(worker, t1, status)
			switch {
			case err == nil && status == 200:
				s.mu.Lock()
				s.Paid += price
				s.MinSeen = min(s.MinSeen, bal)
				if bytes.Equal(s.auth, auth) {
					s.auth = nil // the payment expired it
				}
				s.mu.Unlock()
				return true
			case err == nil && status == 409 && code == "INSUFFICIENT_BALANCE":
				refusals.Add(1)
				cancelHold(w, worker, s, auth, id)
				return true
			case err == nil && status == 401:
				// Another payment of this user expired the token first.
				refusals.Add(1)
				cancelHold(w, worker, s, token(w, worker, s, auth), id)
				return true
			case err == nil && status == 409 && code == "PAYMENT_IN_PROGRESS":
				time.Sleep(20 * time.Millisecond)
				continue
			case err == nil && status != 503:
				m.failAt("pay", status, code, nil)
				cancelHold(w, worker, s, auth, id)
				return true
			}
			m.failAt("pay", status, code, err)
			time.Sleep(20 * time.Millisecond)
		}
		s.mu.Lock()
		s.UnresolvedPaid += price
		s.mu.Unlock()
		return true
	}

	op := func(w *conn, worker int, rng *rand.Rand, intended time.Time) {
		s := wallets[rng.IntN(len(wallets))]
		if rng.Float64() >= cfg.PayShare || !doPay(w, worker, s, intended) {
			doCharge(w, worker, rng, s, intended)
		}
		opsDone.Add(1)
	}

	if cfg.Rate > 0 {
		n := int(cfg.Rate * cfg.Duration.Seconds())
		runArrivals(runCtx, n, 0, cfg.Rate, start, func(worker, unit int, intended time.Time) {
			rng := rand.New(rand.NewPCG(cfg.Seed, uint64(unit)))
			op(c.newConn(), worker, rng, intended)
		})
	} else {
		var wg sync.WaitGroup
		for wi := range cfg.Workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(cfg.Seed, uint64(wi)))
				w := c.newConn()
				time.Sleep(time.Until(start))
				for runCtx.Err() == nil {
					now := time.Now()
					if !now.Before(end) {
						return
					}
					op(w, wi, rng, now)
				}
			}()
		}
		wg.Wait()
	}
	elapsed := time.Since(start)
	stopProgress()
	cfg.mark(false)

	r := &Result{
		Scenario: "wallet-storm", Mode: cfg.mode(), OfferedRate: cfg.Rate, Users: cfg.Wallets,
		Params: map[string]string{"wallets": itoa(cfg.Wallets), "duration": dtoa(cfg.Duration),
			"payments share": ftoa(cfg.PayShare), "replay share": ftoa(cfg.ReplayShare)},
		ElapsedSeconds: elapsed.Seconds(),
	}
	if cfg.Rate > 0 {
		r.Params["rate"] = rateString(cfg.Rate) + " operations/s"
	} else {
		r.Params["workers"] = itoa(cfg.Workers)
	}
	window := min(elapsed, cfg.Duration)
	finishResult(r, c, m, window)
	r.Throughput, r.ThroughputUnit = float64(opsDone.Load())/window.Seconds(), "operations/s"
	r.Conflicts = refusals.Load()

	checkCtx, checkCancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer checkCancel()
	w := c.newConn()
	outs := make([]WalletOutcome, len(wallets))
	for i, s := range wallets {
		o := s.WalletOutcome
		var status int
		var code string
		var err error
		for try := 0; try < 5 && checkCtx.Err() == nil; try++ {
			o.Balance, status, code, err = w.balance(s.id)
			if err == nil && status == 200 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil || status != 200 {
			o.BalanceErr = fmt.Errorf("GET /customers/point: %s", errOr(status, code, err))
		}
		outs[i] = o
	}
	r.addChecks(CheckWallets(outs)...)
	return r, ctx.Err()
}

func errOr(status int, code string, err error) string {
	if err != nil {
		return transportKind(err)
	}
	return outcomeKey(status, code)
}
