package clustertest

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestWalkthroughAcrossThreeNodes runs the README's curl walk-through with
// each step on another node: any request works on any node, and a token
// issued on one node is accepted on the others.
func TestWalkthroughAcrossThreeNodes(t *testing.T) {
	skipShort(t)
	c := newCluster(t, 3, "ACTIVE_TOKENS=10")
	c.startAll()
	n := c.nodes
	at := func(step int) *proc { return n[step%3] }

	_, seats := c.concert(at(0), 5, 2000)
	var u struct {
		ID int64 `json:"id"`
	}
	c.must(201, at(1), "POST", "/users", "", map[string]any{"name": "walker"}, &u)
	// 1. a token, on node 3
	var tok struct {
		Token  string `json:"token"`
		Status string `json:"status"`
	}
	c.must(200, at(2), "POST", "/users/token", "", map[string]any{"userId": u.ID}, &tok)
	if tok.Status != "ACTIVE" {
		t.Fatalf("token %+v, want ACTIVE", tok)
	}
	// 2. poll it on node 1
	var polled struct {
		Status string `json:"status"`
	}
	c.must(200, at(3), "GET", "/users/token", tok.Token, nil, &polled)
	// 3. concerts on node 2
	c.must(200, at(4), "GET", "/concerts", "", nil, nil)
	// 4. top up on node 3
	c.must(200, at(5), "PATCH", "/customers/point", "", map[string]any{"userId": u.ID, "chargeBalance": 5000}, nil)
	// 5. hold on node 1 (the token was issued on node 3)
	var r struct {
		ID    int64 `json:"id"`
		Price int64 `json:"price"`
	}
	c.must(200, at(6), "POST", "/reservations", tok.Token, map[string]any{"userId": u.ID, "seatId": seats[0]}, &r)
	// 6. pay on node 2, the retry with the same key on node 3
	key := fmt.Sprintf("pay-%d", r.ID)
	pay := map[string]any{"reservationId": r.ID, "amount": r.Price}
	c.must(200, at(7), "POST", "/payments", tok.Token, pay, nil, "Idempotency-Key", key)
	c.must(200, at(8), "POST", "/payments", tok.Token, pay, nil, "Idempotency-Key", key)
	// the reservation on node 1, the balance on node 2
	var got struct {
		Status string `json:"status"`
	}
	c.must(200, at(9), "GET", fmt.Sprintf("/reservations/%d", r.ID), tok.Token, nil, &got)
	if got.Status != "CONFIRMED" {
		t.Fatalf("reservation %s, want CONFIRMED", got.Status)
	}
	var bal struct {
		Point int64 `json:"point"`
	}
	body := c.must(200, at(10), "GET", fmt.Sprintf("/customers/point?userId=%d", u.ID), "", nil, &bal)
	t.Logf("balance after paying %d: %s", r.Price, body)
	// The token expired with the payment, on every node.
	for _, p := range n {
		r, _ := c.metric(p, "token_feed_resyncs_total")
		l, _ := c.metric(p, "token_feed_lookups_total")
		t.Logf("%s: %v resyncs, %v lookups", p.name, r, l)
	}
	for _, p := range n {
		waitFor(t, 5*time.Second, "expired token refused on "+p.name, func() bool {
			st, _ := c.call(p, "POST", "/reservations", tok.Token, map[string]any{"userId": u.ID, "seatId": seats[1]}, nil)
			return st == 401
		})
	}
}

// TestOneSeatThousandHoldsThreeNodes releases 1,000 holds of one seat by
// 1,000 users spread over three nodes at once: exactly one gets a 200.
func TestOneSeatThousandHoldsThreeNodes(t *testing.T) {
	skipShort(t)
	const fans = 1000
	// Every hold must be answered 200 or 409, so none may run into the
	// request timeout: the burst took about 1 s on a busy 2-core machine,
	// and the default 5 s would leave little room for a busier one.
	c := newCluster(t, 3, "ACTIVE_TOKENS=2000", "HOLD_LIMIT=4", "REQUEST_TIMEOUT=20s")
	c.startAll()
	_, seats := c.concert(c.nodes[0], 1, 1000)

	type fan struct {
		id    int64
		token string
	}
	fans_ := make([]fan, fans)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range fans {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			id, tok := c.user(c.nodes, i, 0)
			fans_[i] = fan{id, tok}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	start := make(chan struct{})
	statuses := make([]int, fans)
	codes := make([]string, fans)
	for i := range fans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			st, body := c.call(c.nodes[i%3], "POST", "/reservations", fans_[i].token,
				map[string]any{"userId": fans_[i].id, "seatId": seats[0]}, nil)
			statuses[i], codes[i] = st, codeOf(body)
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	count := map[string]int{}
	ok := 0
	for i, st := range statuses {
		count[fmt.Sprintf("%d %s", st, codes[i])]++
		if st == 200 {
			ok++
		}
	}
	t.Logf("1,000 holds of one seat over 3 nodes in %s: %v", time.Since(t0).Round(time.Millisecond), count)
	if ok != 1 {
		t.Fatalf("%d holds got a 200, want exactly 1", ok)
	}
	for k, n := range count {
		if k != "200 " && k != "409 SEAT_UNAVAILABLE" {
			t.Errorf("%d answers %q: only one 200 and 409 SEAT_UNAVAILABLE expected", n, k)
		}
	}
}

// TestIdleExpirySeesUsesOnEveryNode uses one token only through a node
// that does not run the queue manager: it stays alive past its idle TTL
// (the node reports its uses), while an unused token expires.
func TestIdleExpirySeesUsesOnEveryNode(t *testing.T) {
	skipShort(t)
	c := newCluster(t, 3, "ACTIVE_TOKENS=10", "TOKEN_IDLE_TTL=3s")
	c.startAll()
	host := c.queueHost(c.nodes...)
	if host == nil {
		t.Fatal("no node runs the queue manager")
	}
	other := without(c.nodes, host)[0]
	_, used := c.user(c.nodes, 0, 0)
	_, idle := c.user(c.nodes, 1, 0)
	deadline := time.Now().Add(7 * time.Second)
	for time.Now().Before(deadline) {
		// Any call that checks the token; the reservation does not exist.
		if st, body := c.call(other, "GET", "/reservations/999999", used, nil, nil); st != 404 {
			t.Fatalf("token used on %s every 500 ms was refused after %s: %d %s", other.name, 7*time.Second-time.Until(deadline), st, body)
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, p := range c.nodes {
		if st, _ := c.call(p, "GET", "/reservations/999999", idle, nil, nil); st != 401 {
			t.Errorf("the token unused for 7 s (TTL 3 s) answers %d on %s, want 401", st, p.name)
		}
	}
	t.Logf("a token used only on %s (the queue manager runs on %s) outlived its idle TTL; an unused one expired", other.name, host.name)
}
