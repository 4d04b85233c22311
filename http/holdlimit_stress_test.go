package http_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	stdhttp "net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/concert/ticketing/node"
)

// stressOp is one request of the hold-limit stress and its answer.
type stressOp struct {
	kind       string // hold, cancel, pay, get
	seat, id   int64
	status     int
	code       string // error code, or the reservation's status
	sent, recv time.Time
	expiresAt  time.Time
}

// stressClient sends requests from many goroutines without testing.T
// (require may not be called off the test's goroutine).
type stressClient struct {
	base string
	c    *stdhttp.Client
}

func (s *stressClient) send(method, path string, body any, token string) (int, map[string]any, error) {
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, err := stdhttp.NewRequest(method, s.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := s.c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, nil, err
	}
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	_ = d.Decode(&m)
	return res.StatusCode, m, nil
}

func jsonInt(v any) int64 {
	n, _ := v.(json.Number)
	i, _ := n.Int64()
	return i
}

// TestHoldLimitUnderConcurrentHoldsCancelsAndPayments: one user holds seats
// on twelve dates from ten goroutines at once, cancelling, paying and
// letting holds expire, while two more read every reservation it was
// granted. From the answers alone: at no moment may more than HOLD_LIMIT
// holds be certainly live (granted and not yet asked to end) — nor may a
// read show a hold HELD while HOLD_LIMIT others are certainly live; once
// everything expired, the only seats taken are the paid ones, every 200
// payment reads CONFIRMED and every 200 cancel CANCELLED, and the balance
// is the charge less the paid prices.
func TestHoldLimitUnderConcurrentHoldsCancelsAndPayments(t *testing.T) {
	const (
		limit = 4
		ttl   = 1500 * time.Millisecond
		price = 100
	)
	e := startNode(t, node.Config{AdminKey: adminKey, HoldLimit: limit, HoldTTL: ttl})
	var dates []string
	for i := 1; i <= 12; i++ {
		dates = append(dates, day(i))
	}
	concertID, _ := e.concert(price, 20, dates...)
	var seats []int64
	for _, d := range dates {
		seats = append(seats, e.freeSeats(concertID, d)...)
	}
	u := e.user("greedy")
	const charged = 1_000_000
	e.charge(u, charged)
	cl := &stressClient{base: e.base, c: &stdhttp.Client{Timeout: 10 * time.Second}}

	var tokMu sync.Mutex
	tok := e.token(u)
	token := func() string { tokMu.Lock(); defer tokMu.Unlock(); return tok }
	refresh := func(old string) {
		tokMu.Lock()
		defer tokMu.Unlock()
		if tok != old {
			return
		}
		if st, m, err := cl.send("POST", "/users/token", map[string]any{"userId": u}, ""); err == nil && st == 200 {
			tok = m["token"].(string)
		}
	}

	var mu sync.Mutex
	var ops []stressOp
	var granted []int64
	record := func(op stressOp) {
		mu.Lock()
		defer mu.Unlock()
		ops = append(ops, op)
		if op.kind == "hold" && op.status == 200 {
			granted = append(granted, op.id)
		}
	}
	do := func(kind, method, path string, body any, seat, id int64) stressOp {
		for {
			tk := token()
			op := stressOp{kind: kind, seat: seat, id: id, sent: time.Now()}
			st, m, err := cl.send(method, path, body, tk)
			op.recv, op.status = time.Now(), st
			if err != nil {
				op.status, op.code = 0, err.Error()
				return op
			}
			if st == 401 && kind != "get" {
				refresh(tk)
				continue // a payment expired the token: nothing was done
			}
			if st == 200 {
				if kind == "pay" {
					op.code = "CONFIRMED"
				} else {
					op.code, _ = m["status"].(string)
					op.id = jsonInt(m["id"])
					if ts, _ := m["expiresAt"].(string); ts != "" {
						op.expiresAt, _ = time.Parse(time.RFC3339Nano, ts)
					}
				}
			} else if m != nil {
				op.code, _ = m["code"].(string)
			}
			return op
		}
	}

	stop := time.Now().Add(5 * time.Second)
	var wg sync.WaitGroup
	var holds, limited atomic.Int64
	for w := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for time.Now().Before(stop) {
				seat := seats[rng.IntN(len(seats))]
				op := do("hold", "POST", "/reservations", map[string]any{"userId": u, "seatId": seat}, seat, 0)
				record(op)
				if op.code == "HOLD_LIMIT" {
					limited.Add(1)
				}
				if op.status != 200 {
					continue
				}
				holds.Add(1)
				time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
				switch rng.IntN(10) {
				case 0, 1, 2, 3, 4:
					record(do("cancel", "DELETE", fmt.Sprintf("/reservations/%d", op.id), nil, seat, op.id))
				case 5, 6, 7, 8:
					record(do("pay", "POST", "/payments", map[string]any{"reservationId": op.id, "amount": price}, seat, op.id))
				}
			}
		}()
	}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				mu.Lock()
				ids := append([]int64(nil), granted...)
				mu.Unlock()
				for _, id := range ids {
					op := do("get", "GET", fmt.Sprintf("/reservations/%d", id), nil, 0, id)
					if op.status == 401 {
						continue
					}
					record(op)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d requests, %d holds granted, %d refused HOLD_LIMIT", len(ops), holds.Load(), limited.Load())

	// Certainly live: from the hold's 200 to the first request ending it
	// (cancel or pay sent), or its expiry.
	type span struct {
		id       int64
		from, to time.Time
	}
	var spans []span
	for _, h := range ops {
		if h.kind != "hold" || h.status != 200 {
			continue
		}
		s := span{id: h.id, from: h.recv, to: h.expiresAt}
		for _, o := range ops {
			if (o.kind == "cancel" || o.kind == "pay") && o.id == h.id && o.sent.Before(s.to) {
				s.to = o.sent
			}
		}
		spans = append(spans, s)
	}
	liveAt := func(at time.Time, except int64) int {
		n := 0
		for _, s := range spans {
			if s.id != except && !s.from.After(at) && s.to.After(at) {
				n++
			}
		}
		return n
	}
	for _, s := range spans {
		if n := liveAt(s.from, 0); n > limit {
			t.Errorf("at %s, %d holds certainly live (limit %d)", s.from.Format("15:04:05.000"), n, limit)
		}
	}
	for _, o := range ops {
		if o.kind != "get" || o.status != 200 || o.code != "HELD" {
			continue
		}
		n := 0
		for _, s := range spans {
			if s.id != o.id && !s.from.After(o.sent) && !s.to.Before(o.recv) {
				n++
			}
		}
		if n >= limit {
			t.Errorf("reservation %d read HELD while %d other holds were certainly live", o.id, n)
		}
	}

	// Once every hold ran out, only paid seats are taken.
	time.Sleep(ttl + 1500*time.Millisecond)
	tk := e.token(u)
	final := map[int64]string{}
	for _, id := range granted {
		st, m, err := cl.send("GET", fmt.Sprintf("/reservations/%d", id), nil, tk)
		if err != nil || st != 200 {
			t.Fatalf("final read of %d: %d %v %v", id, st, m, err)
		}
		final[id] = m["status"].(string)
	}
	var paid int64
	paidSeats := map[int64]bool{}
	for _, h := range ops {
		if h.kind == "hold" && h.status == 200 {
			switch final[h.id] {
			case "CONFIRMED":
				paid += price
				paidSeats[h.seat] = true
			case "HELD":
				t.Errorf("reservation %d still HELD after its expiry", h.id)
			}
		}
		if h.kind == "pay" && h.status == 200 && final[h.id] != "CONFIRMED" {
			t.Errorf("payment of %d answered 200, reads %s", h.id, final[h.id])
		}
		if h.kind == "cancel" && h.status == 200 && final[h.id] != "CANCELLED" {
			t.Errorf("cancel of %d answered 200, reads %s", h.id, final[h.id])
		}
	}
	free := map[int64]bool{}
	for _, d := range dates {
		for _, s := range e.freeSeats(concertID, d) {
			free[s] = true
		}
	}
	var leaked []int64
	for _, s := range seats {
		if !free[s] && !paidSeats[s] {
			leaked = append(leaked, s)
		}
		if free[s] && paidSeats[s] {
			t.Errorf("seat %d was paid for but is free", s)
		}
	}
	sort.Slice(leaked, func(i, j int) bool { return leaked[i] < leaked[j] })
	if len(leaked) > 0 {
		t.Errorf("seats taken though no granted reservation holds them: %v", leaked)
	}
	if b := e.balance(u); b != charged-paid {
		t.Errorf("balance %d, want %d - %d paid", b, charged, paid)
	}
}
