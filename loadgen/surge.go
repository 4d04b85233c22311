package loadgen

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// QueueSurgeConfig tunes RunQueueSurge.
type QueueSurgeConfig struct {
	Common
	Users int // default 100,000
	// Workers is the closed loop's requests in flight; default 512.
	Workers int
	// RepeatEvery: every RepeatEvery-th user asks twice at the same
	// moment (both must get the same token); default 10, 0 or less: none.
	RepeatEvery int
	// Admit is the number of tokens the run frees afterwards (their users
	// hold a seat and pay) to watch the head of the line become ACTIVE;
	// default 50, negative: none.
	Admit int
	Price int64
}

// RunQueueSurge: Users users ask for a queue token, as fast as the server
// takes them (closed loop) or at Rate requests/s (open loop); then every
// waiting user polls its token once. Verdicts: one token per user, the
// active count never above ACTIVE_TOKENS (queue_active sampled every
// 100 ms), the line in the order the requests were served, and — after
// Admit active users pay, which expires their tokens — the head of the
// line admitted first.
//
// The run leaves its waiting tokens in line (until WAIT_IDLE_TTL without
// a poll) and its active ones ACTIVE (until TOKEN_IDLE_TTL): run it last.
func RunQueueSurge(ctx context.Context, c *Client, cfg QueueSurgeConfig) (*Result, error) {
	if cfg.Users <= 0 {
		cfg.Users = 100000
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 512
	}
	if cfg.RepeatEvery == 0 {
		cfg.RepeatEvery = 10
	}
	if cfg.Admit == 0 {
		cfg.Admit = 50
	}
	if cfg.Price <= 0 {
		cfg.Price = 1000
	}
	admitSeats := max(cfg.Admit, 1)
	fx, err := Setup(ctx, c, SetupConfig{
		Title: "concertbench queue-surge " + time.Now().UTC().Format(time.RFC3339Nano),
		Dates: (admitSeats + 49) / 50, SeatsPerDate: 50, Users: cfg.Users, Price: cfg.Price,
		NoCharge: true, NoToken: true, Concurrency: cfg.SetupConcurrency, OnProgress: cfg.OnProgress,
	})
	if err != nil {
		return nil, err
	}
	type req struct {
		user   int
		repeat bool
	}
	reqs := make([]req, 0, cfg.Users+cfg.Users/max(cfg.RepeatEvery, 1))
	for i := range cfg.Users {
		reqs = append(reqs, req{user: i})
		if cfg.RepeatEvery > 0 && i%cfg.RepeatEvery == 0 {
			reqs = append(reqs, req{user: i, repeat: true})
		}
	}
	before, qerr := c.ReadQueue(ctx)
	if cfg.Rate <= 0 {
		warmConns(ctx, c, min(cfg.Workers, len(reqs)), func(i int) int64 { return fx.Users[i].ID })
	}

	cfg.mark(true)
	start := time.Now().Add(20 * time.Millisecond)
	m := newMeter(start, "token", "poll", "admit")
	opToken, opPoll, opAdmit := m.op(0), m.op(1), m.op(2)
	answers := make([]SurgeAnswer, len(reqs))
	// When each request was sent and answered; a user's repeated request
	// has its own slots, since either may be the one served first.
	sent := make([]int64, len(reqs))
	recv := make([]int64, len(reqs))
	var done, lastAnswer atomic.Int64

	// The sampler watches queue_active until the end of the admission.
	maxActive := atomic.Int64{}
	maxActive.Store(-1)
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampled sync.WaitGroup
	if qerr == nil {
		sampled.Add(1)
		go func() {
			defer sampled.Done()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				if q, err := c.ReadQueue(sampleCtx); err == nil && q.Active > maxActive.Load() {
					maxActive.Store(q.Active)
				}
				select {
				case <-sampleCtx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	defer func() { stopSampling(); sampled.Wait() }()

	stopProgress := startProgress(cfg.OnProgress, start, func(el time.Duration) Progress {
		return Progress{Phase: "queue-surge", Done: done.Load(), Total: int64(len(reqs)), Elapsed: el}
	})
	limit := 5*time.Minute + time.Duration(float64(len(reqs))/max(cfg.Rate, 1)*float64(time.Second))
	runCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	runArrivals(runCtx, len(reqs), cfg.Workers, cfg.Rate, start, func(worker, unit int, intended time.Time) {
		rq := reqs[unit]
		u := &fx.Users[rq.user]
		w := c.newConn()
		t0 := time.Now()
		tok, status, code, err := w.issueToken(u.ID)
		opToken.observe(worker, intended, status)
		at := int64(time.Since(start))
		for {
			old := lastAnswer.Load()
			if at <= old || lastAnswer.CompareAndSwap(old, at) {
				break
			}
		}
		done.Add(1)
		if err != nil || status != 200 {
			m.failAt("token", status, code, err)
			return
		}
		answers[unit] = SurgeAnswer{User: rq.user, Token: tok.Token, Status: tok.Status, Position: tok.Position}
		sent[unit], recv[unit] = int64(t0.Sub(start)), at
	})
	stopProgress()
	window := time.Duration(lastAnswer.Load())
	cfg.mark(false)

	// A user asked when its first request left, and was served when its
	// first answer came (failed requests do not count).
	userSent, userRecv := make([]int64, cfg.Users), make([]int64, cfg.Users)
	for i := range userSent {
		userSent[i], userRecv[i] = math.MaxInt64, math.MaxInt64
	}
	for k, rq := range reqs {
		userSent[rq.user] = min(userSent[rq.user], sent[k])
		if answers[k].Token != "" {
			userRecv[rq.user] = min(userRecv[rq.user], recv[k])
		}
	}

	// Who waits, and in which order: every waiting user polls once.
	o := SurgeOutcome{Users: cfg.Users, Answers: answers, Sent: userSent, Recv: userRecv,
		ActiveLimit: int64(cfg.ActiveTokens), ActiveBefore: before.Active, HeldAdded: -1}
	if after, err := c.ReadQueue(ctx); err == nil && qerr == nil {
		o.HeldAdded = after.Waiting + after.Active - before.Waiting - before.Active
	}
	firstOf := make([]*SurgeAnswer, cfg.Users)
	for i := range answers {
		if a := &answers[i]; a.Token != "" && firstOf[a.User] == nil {
			firstOf[a.User] = a
		}
	}
	secrets := newSurgeSecrets(cfg.Users, answers, recv)
	var waiting, active []int
	for u, a := range firstOf {
		switch {
		case a == nil:
		case a.Status == "WAIT":
			waiting = append(waiting, u)
		case a.Status == "ACTIVE":
			active = append(active, u)
		}
	}
	positions := make(map[int]int64, len(waiting))
	var pmu sync.Mutex
	pollStart := time.Now()
	pollAll := func(users []int) error {
		var firstErr error
		runArrivals(runCtx, len(users), cfg.Workers, 0, time.Now(), func(worker, unit int, intended time.Time) {
			u := users[unit]
			w := c.newConn()
			tok, _, status, code, err := secrets.live(w, fx.Users[u].ID, u)
			opPoll.observe(worker, intended, status)
			pmu.Lock()
			defer pmu.Unlock()
			if err != nil || status != 200 {
				m.failAt("poll", status, code, err)
				if firstErr == nil {
					firstErr = fmt.Errorf("GET /users/token: %s", errOr(status, code, err))
				}
				return
			}
			if tok.Status == "WAIT" {
				positions[u] = tok.Position
			} else {
				delete(positions, u)
			}
		})
		return firstErr
	}
	o.OrderErr = pollAll(waiting)
	pollSeconds := time.Since(pollStart).Seconds()
	order := make([]int, 0, len(positions))
	for u := range positions {
		order = append(order, u)
	}
	slices.SortFunc(order, func(a, b int) int { return int(positions[a] - positions[b]) })
	for i := 1; i < len(order) && o.OrderErr == nil; i++ {
		if positions[order[i]] == positions[order[i-1]] {
			o.OrderErr = fmt.Errorf("users %d and %d both at position %d", order[i-1], order[i], positions[order[i]])
		}
	}
	o.Order = order

	// Admission: free tokens at the head of the line and watch who gets in.
	var notes []string
	switch {
	case cfg.Admit < 0:
	case before.Waiting > 0 || qerr != nil:
		notes = append(notes, fmt.Sprintf("admission not checked: %d tokens of others waited ahead of this run", before.Waiting))
	case len(active) == 0 || len(order) == 0:
		notes = append(notes, "admission not checked: the surge left no active user or nobody waiting")
	default:
		k := min(cfg.Admit, len(active), len(order))
		var seats []Seat
		for _, d := range fx.Dates {
			seats = append(seats, d.Seats...)
		}
		runID := strconv.FormatInt(time.Now().UnixNano(), 36)
		var freed atomic.Int64
		runArrivals(runCtx, k, 32, 0, time.Now(), func(worker, unit int, intended time.Time) {
			u := fx.Users[active[unit]]
			w := c.newConn()
			_, secret, status, code, err := secrets.live(w, u.ID, active[unit])
			if err != nil || status != 200 {
				m.failAt("admit token", status, code, err)
				return
			}
			auth := []byte("Bearer " + secret)
			_, status, code, err = w.charge(u.ID, cfg.Price, "cb-qs-"+runID+"-"+itoa(unit))
			opAdmit.observe(worker, intended, status)
			if err != nil || status != 200 {
				m.failAt("admit charge", status, code, err)
				return
			}
			t1 := time.Now()
			id, status, code, err := w.hold(auth, u.ID, seats[unit].ID)
			opAdmit.observe(worker, t1, status)
			if err != nil || status != 200 {
				m.failAt("admit hold", status, code, err)
				return
			}
			t2 := time.Now()
			_, status, code, err = w.pay(auth, u.ID, id, cmp0(seats[unit].Price, fx.Price), "cb-qp-"+runID+"-"+itoa(unit))
			opAdmit.observe(worker, t2, status)
			if err != nil || status != 200 {
				m.failAt("admit pay", status, code, err)
				return
			}
			freed.Add(1)
		})
		o.Freed = int(freed.Load())
		// The head of the line, where the freed slots must go, and its
		// back, where they must not.
		headN := min(len(order), 2*k)
		window := append([]int{}, order[:headN]...)
		window = append(window, order[max(headN, len(order)-k):]...)
		deadline := time.Now().Add(3 * time.Second)
		for {
			admitted, err := pollAdmitted(runCtx, c, fx, window, secrets, opPoll)
			if err != nil {
				o.OrderErr = err
				break
			}
			o.Admitted, o.AdmittedBehind = nil, 0
			inHead := make(map[int]bool, headN)
			for _, u := range order[:headN] {
				inHead[u] = true
			}
			for _, u := range admitted {
				if inHead[u] {
					o.Admitted = append(o.Admitted, u)
				} else {
					o.AdmittedBehind++
				}
			}
			if o.Admitted == nil {
				o.Admitted = []int{}
			}
			if len(admitted) >= o.Freed || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	stopSampling()
	sampled.Wait()
	o.MaxActive = maxActive.Load()

	r := &Result{
		Scenario: "queue-surge", Mode: cfg.mode(), OfferedRate: cfg.Rate, Users: cfg.Users,
		Params:   map[string]string{"users": itoa(cfg.Users), "repeat every": itoa(cfg.RepeatEvery), "admit": itoa(cfg.Admit)},
		Attempts: int64(len(reqs)), ElapsedSeconds: window.Seconds(), Notes: notes,
	}
	if cfg.Rate > 0 {
		r.Params["rate"] = rateString(cfg.Rate) + " requests/s"
	} else {
		r.Params["in flight"] = itoa(cfg.Workers)
	}
	if cfg.ActiveTokens > 0 {
		r.Params["ACTIVE_TOKENS"] = itoa(cfg.ActiveTokens)
	}
	finishResult(r, c, m, window)
	if t := r.Op("token"); t != nil {
		r.Throughput, r.ThroughputUnit = float64(t.Count)/window.Seconds(), "token requests/s"
		// Rates of the other kinds are not per the surge's window.
		if p := r.Op("poll"); p != nil && pollSeconds > 0 {
			p.PerSec = float64(p.Count) / pollSeconds
		}
		r.RequestsPerSec = r.Throughput
	}
	r.addChecks(CheckSurge(o)...)
	r.Notes = append(r.Notes, fmt.Sprintf("this run leaves %d tokens WAIT in line (until WAIT_IDLE_TTL without a poll) and %d ACTIVE (until TOKEN_IDLE_TTL): "+
		"later runs on this server queue behind them", len(order)-len(o.Admitted), len(active)-o.Freed+len(o.Admitted)))
	if runCtx.Err() != nil && ctx.Err() == nil {
		return r, fmt.Errorf("queue-surge: not over after %s: %w", limit, runCtx.Err())
	}
	return r, ctx.Err()
}

// pollAdmitted polls the users of window (in line order) and returns those
// now ACTIVE, in line order.
func pollAdmitted(ctx context.Context, c *Client, fx *Fixture, window []int, secrets *surgeSecrets, op *opMeter) ([]int, error) {
	isActive := make([]bool, len(window))
	var firstErr error
	var mu sync.Mutex
	runArrivals(ctx, len(window), 64, 0, time.Now(), func(worker, unit int, intended time.Time) {
		u := window[unit]
		w := c.newConn()
		tok, _, status, code, err := secrets.live(w, fx.Users[u].ID, u)
		op.observe(worker, intended, status)
		if err != nil || status != 200 {
			mu.Lock()
			if firstErr == nil {
				firstErr = fmt.Errorf("GET /users/token: %s", errOr(status, code, err))
			}
			mu.Unlock()
			return
		}
		isActive[unit] = tok.Status == "ACTIVE"
	})
	var out []int
	for i, a := range isActive {
		if a {
			out = append(out, window[i])
		}
	}
	return out, firstErr
}

// surgeSecrets keeps, by user, the secrets of the user's token answers,
// the last received first. A repeated request answers the user's token
// with a fresh secret that replaces the earlier one (README, "Queue
// tokens"), so the live secret is normally the last received; live makes
// sure, as a replaced secret is refused 401.
type surgeSecrets struct {
	mu     sync.Mutex
	byUser [][]string
}

func newSurgeSecrets(users int, answers []SurgeAnswer, recv []int64) *surgeSecrets {
	idx := make([][]int, users)
	for i, a := range answers {
		if a.Token != "" {
			idx[a.User] = append(idx[a.User], i)
		}
	}
	s := &surgeSecrets{byUser: make([][]string, users)}
	for u, is := range idx {
		slices.SortFunc(is, func(a, b int) int { return cmp.Compare(recv[b], recv[a]) })
		for _, i := range is {
			s.byUser[u] = append(s.byUser[u], answers[i].Token)
		}
	}
	return s
}

// live polls user u's token (GET /users/token) with each of its secrets
// until one is not refused 401, and keeps that one first.
func (s *surgeSecrets) live(w *conn, userID int64, u int) (tok tokenAnswer, secret string, status int, code string, err error) {
	s.mu.Lock()
	list := slices.Clone(s.byUser[u])
	s.mu.Unlock()
	for i, sec := range list {
		tok, status, code, err = w.pollToken(userID, []byte("Bearer "+sec))
		if err != nil || status != 401 {
			if i > 0 {
				s.mu.Lock()
				s.byUser[u] = append([]string{sec}, slices.DeleteFunc(slices.Clone(list), func(x string) bool { return x == sec })...)
				s.mu.Unlock()
			}
			return tok, sec, status, code, err
		}
	}
	return tok, "", status, code, err
}
