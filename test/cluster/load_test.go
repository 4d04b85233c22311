package clustertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// fan is a user with a token (replaced after each payment, which expires it).
type fan struct {
	id    int64
	mu    sync.Mutex
	token string
}

func (f *fan) tok() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.token
}

// makeFans creates n charged users with ACTIVE tokens, steps spread over
// nodes.
func (c *testCluster) makeFans(nodes []*proc, n int, charge int64) []*fan {
	c.t.Helper()
	out := make([]*fan, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			id, tok := c.user(nodes, i, charge)
			out[i] = &fan{id: id, token: tok}
		}()
	}
	wg.Wait()
	if c.t.Failed() {
		c.t.FailNow()
	}
	return out
}

// hold is an acknowledged hold.
type hold struct {
	id, user, seat int64
	token          string
	node           string
	fan            *fan
}

// ledger records what the cluster acknowledged.
type ledger struct {
	mu       sync.Mutex
	holds    map[int64]hold
	paid     map[int64]bool
	answers  map[string]int // "node status code" → count
	slow     atomic.Int64   // answers later than the request deadline + 2 s
	max503   atomic.Int64   // longest wait for a 503, in ms
	requests atomic.Int64
}

func newLedger() *ledger {
	return &ledger{holds: map[int64]hold{}, paid: map[int64]bool{}, answers: map[string]int{}}
}

func (l *ledger) answer(node string, st int, code string) {
	l.mu.Lock()
	l.answers[fmt.Sprintf("%d %s", st, code)]++
	l.mu.Unlock()
}

// loadConfig shapes runLoad.
type loadConfig struct {
	workers int
	pause   time.Duration // between a worker's operations (light load)
	pay     bool          // pay each hold (on another node), then take a new token
}

// runLoad makes holds (and payments) of random seats by random fans on
// random live nodes until ctx ends. live is asked before each request.
func (c *testCluster) runLoad(ctx context.Context, fans []*fan, seats []int64, live func() []*proc, cfg loadConfig, l *ledger) {
	var wg sync.WaitGroup
	for w := range cfg.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for ctx.Err() == nil {
				nodes := live()
				if len(nodes) == 0 {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				f := fans[r.IntN(len(fans))]
				seat := seats[r.IntN(len(seats))]
				p := nodes[r.IntN(len(nodes))]
				tok := f.tok()
				var res struct {
					ID    int64 `json:"id"`
					Price int64 `json:"price"`
				}
				t0 := time.Now()
				st, body := c.call(p, "POST", "/reservations", tok, map[string]any{"userId": f.id, "seatId": seat}, &res)
				l.requests.Add(1)
				took := time.Since(t0)
				if took > 7*time.Second {
					l.slow.Add(1)
				}
				if st == 503 && took.Milliseconds() > l.max503.Load() {
					l.max503.Store(took.Milliseconds())
				}
				l.answer(p.name, st, codeOf(body))
				if st == 200 {
					l.mu.Lock()
					l.holds[res.ID] = hold{id: res.ID, user: f.id, seat: seat, token: tok, node: p.name, fan: f}
					l.mu.Unlock()
					if cfg.pay {
						q := nodes[r.IntN(len(nodes))]
						key := fmt.Sprintf("pay-%d", res.ID)
						for try := 0; try < 5 && ctx.Err() == nil; try++ {
							pst, pbody := c.call(q, "POST", "/payments", tok, map[string]any{"reservationId": res.ID, "amount": res.Price}, nil, "Idempotency-Key", key)
							l.requests.Add(1)
							l.answer(q.name, pst, codeOf(pbody))
							if pst == 200 {
								l.mu.Lock()
								l.paid[res.ID] = true
								l.mu.Unlock()
								break
							}
							if pst != 503 && pst != 0 {
								break
							}
							time.Sleep(100 * time.Millisecond)
							if ns := live(); len(ns) > 0 {
								q = ns[r.IntN(len(ns))]
							}
						}
						// The payment expired the token: take a new one.
						var nt struct {
							Token string `json:"token"`
						}
						if st, _ := c.call(q, "POST", "/users/token", "", map[string]any{"userId": f.id}, &nt); st == 200 {
							f.mu.Lock()
							f.token = nt.Token
							f.mu.Unlock()
						}
					}
				}
				if cfg.pause > 0 {
					time.Sleep(cfg.pause)
				}
			}
		}()
	}
	wg.Wait()
}

// verify checks every acknowledged hold and payment through node p: each
// is still there, and no seat is held or sold twice.
func (c *testCluster) verify(p *proc, l *ledger) {
	c.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	bySeat := map[int64][]int64{}
	missing := 0
	for id, h := range l.holds {
		var r struct {
			Status string `json:"status"`
			SeatID int64  `json:"seatId"`
			UserID int64  `json:"userId"`
		}
		var st int
		var body []byte
		// The hold's own token, or the fan's latest: a fan whose payment
		// failed asked for a token again, which gave it a fresh secret and
		// retired the one the hold used (issue 11's rekey).
		tokens := []string{h.token}
		if h.fan != nil && h.fan.tok() != h.token {
			tokens = append(tokens, h.fan.tok())
		}
		for _, tok := range tokens {
			for try := 0; try < 20; try++ {
				st, body = c.call(p, "GET", fmt.Sprintf("/reservations/%d", id), tok, nil, &r)
				if st != 503 && st != 0 {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
			if st != 401 {
				break
			}
		}
		switch {
		case st != 200:
			missing++
			c.t.Errorf("acknowledged hold %d (user %d, seat %d, on %s, paid %v): %d %s", id, h.user, h.seat, h.node, l.paid[id], st, body)
			continue
		case r.SeatID != h.seat || r.UserID != h.user:
			c.t.Errorf("hold %d is seat %d of user %d, acknowledged as seat %d of user %d", id, r.SeatID, r.UserID, h.seat, h.user)
		case l.paid[id] && r.Status != "CONFIRMED":
			c.t.Errorf("paid hold %d is %s", id, r.Status)
		case r.Status != "HELD" && r.Status != "CONFIRMED":
			c.t.Errorf("acknowledged hold %d is %s", id, r.Status)
		}
		if r.Status == "HELD" || r.Status == "CONFIRMED" {
			bySeat[h.seat] = append(bySeat[h.seat], id)
		}
	}
	for seat, ids := range bySeat {
		if len(ids) > 1 {
			c.t.Errorf("seat %d is held or sold %d times: reservations %v", seat, len(ids), ids)
		}
	}
	c.t.Logf("verified %d acknowledged holds (%d paid) through %s: %d missing, %d seats taken",
		len(l.holds), len(l.paid), p.name, missing, len(bySeat))
}

func (l *ledger) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := make([]string, 0, len(l.answers))
	for k := range l.answers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for _, k := range keys {
		s += fmt.Sprintf(" [%s]×%d", k, l.answers[k])
	}
	return fmt.Sprintf("%d requests, %d holds, %d paid, %d slow, longest 503 of a hold %d ms;%s",
		l.requests.Load(), len(l.holds), len(l.paid), l.slow.Load(), l.max503.Load(), s)
}

// seatsOf creates a concert of dates×perDate seats (several dates, so seat
// actors land on several nodes) and returns every seat id.
func (c *testCluster) seatsOf(p *proc, dates, perDate int) []int64 {
	c.t.Helper()
	var all []int64
	for range dates {
		_, s := c.concert(p, perDate, 100)
		all = append(all, s...)
	}
	return all
}

// liveSet is the nodes requests may go to.
type liveSet struct {
	mu    sync.Mutex
	nodes []*proc
}

func (s *liveSet) get() []*proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*proc(nil), s.nodes...)
}

func (s *liveSet) set(n ...*proc) {
	s.mu.Lock()
	s.nodes = n
	s.mu.Unlock()
}

func without(nodes []*proc, x *proc) []*proc {
	var out []*proc
	for _, p := range nodes {
		if p != x {
			out = append(out, p)
		}
	}
	return out
}

// probeFailover asks the queue manager (GET /users/token) through the
// given nodes, a new probe every 20 ms, until one started after start
// succeeds; it returns how long after start that probe answered, and how
// many probes failed (503) or were still waiting meanwhile.
func (c *testCluster) probeFailover(ctx context.Context, nodes []*proc, token string, start time.Time) (time.Duration, int) {
	var mu sync.Mutex
	first := time.Duration(-1)
	failed := 0
	var wg sync.WaitGroup
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ctx.Err() == nil; i++ {
		mu.Lock()
		done := first >= 0
		mu.Unlock()
		if done {
			break
		}
		p := nodes[i%len(nodes)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, _ := c.call(p, "GET", "/users/token", token, nil, nil)
			mu.Lock()
			defer mu.Unlock()
			if st == 200 {
				if d := time.Since(start); first < 0 || d < first {
					first = d
				}
			} else {
				failed++
			}
		}()
		<-tick.C
	}
	wg.Wait()
	return first, failed
}
