package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	stdhttp "net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/concert/ticketing/persistence/pgtest"
)

// outcome is what became of one request during a graceful stop.
type outcome int

const (
	answered outcome = iota // a complete HTTP answer
	refused                 // the connection was refused before the request was written
	cut                     // anything else: the request may have been read, and got no answer
)

// try sends one request and reads its whole answer. status is 0 unless the
// outcome is answered.
func (c *client) try(method, path, token string, body, out any) (int, outcome, error) {
	res, err := c.http.Do(c.request(method, path, token, body))
	if err != nil {
		// A failed dial (refused, or reset during the handshake) is the
		// clean refusal: no byte of the request was written.
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return 0, refused, err
		}
		return 0, cut, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, cut, fmt.Errorf("reading the answer: %w", err)
	}
	if out != nil && res.StatusCode < 300 {
		_ = json.Unmarshal(data, out)
	}
	return res.StatusCode, answered, nil
}

// stopFan is one client of TestGracefulStopAnswersEveryRequest.
type stopFan struct {
	id    int64
	token string
	c     *client
}

// stopTally counts the outcomes of one stop.
type stopTally struct {
	sigtermAt    atomic.Int64 // Unix ns; 0 before SIGTERM
	afterSigterm atomic.Int64 // answers to requests sent after SIGTERM
	refusals     atomic.Int64
	mu           sync.Mutex
	cuts         []string
}

// send runs one request of f; ok is false when the server is gone (the
// fan stops) and status is the answer's status (0 without an answer).
func (st *stopTally) send(f *stopFan, method, path string, body, out any) (status int, ok bool) {
	sent := time.Now().UnixNano()
	status, o, err := f.c.try(method, path, f.token, body, out)
	switch o {
	case answered:
		if at := st.sigtermAt.Load(); at != 0 && sent > at {
			st.afterSigterm.Add(1)
		}
		return status, true
	case refused:
		st.refusals.Add(1)
	default:
		st.mu.Lock()
		st.cuts = append(st.cuts, fmt.Sprintf("%s %s: %v", method, path, err))
		st.mu.Unlock()
	}
	return 0, false
}

// load runs f's mix — charge, hold, then cancel or pay — until the server
// is gone, recording acknowledged changes in l.
func (st *stopTally) load(f *stopFan, l *ledger, seatIDs []int64, rng *rand.Rand) {
	for {
		amount := int64(50 + rng.IntN(200))
		status, ok := st.send(f, "PATCH", "/customers/point", map[string]any{"userId": f.id, "chargeBalance": amount}, nil)
		l.mu.Lock()
		switch {
		case status == 200:
			l.chargedAck[f.id] += amount
			l.acknowledged++
		case !ok || status == 503:
			l.chargedUnk[f.id] += amount
		}
		l.mu.Unlock()
		if !ok {
			return
		}
		var r struct {
			ID    int64 `json:"id"`
			Price int64 `json:"price"`
		}
		seat := seatIDs[rng.IntN(len(seatIDs))]
		if status, ok = st.send(f, "POST", "/reservations", map[string]any{"userId": f.id, "seatId": seat}, &r); !ok {
			return
		}
		if status == 401 { // the token expired with a payment: queue again
			var tok struct {
				Token string `json:"token"`
			}
			if status, ok = st.send(f, "POST", "/users/token", map[string]any{"userId": f.id}, &tok); status == 200 {
				f.token = tok.Token
			}
			if !ok {
				return
			}
			continue
		}
		if status != 200 {
			continue
		}
		l.mu.Lock()
		l.holds[r.ID], l.seatOf[r.ID] = f.id, seat
		l.acknowledged++
		l.mu.Unlock()
		method, path, body, done := "DELETE", fmt.Sprintf("/reservations/%d", r.ID), any(nil), l.cancelled
		if rng.IntN(2) == 0 {
			method, path, body, done = "POST", "/payments", map[string]any{"reservationId": r.ID, "amount": r.Price}, l.paid
		}
		status, ok = st.send(f, method, path, body, nil)
		if status == 200 {
			l.mu.Lock()
			done[r.ID] = true
			l.mu.Unlock()
		}
		if !ok {
			return
		}
	}
}

// TestGracefulStopAnswersEveryRequest sends SIGTERM to a real server under
// a mixed load of 32 clients — half on keep-alive connections, half opening
// a connection per request — three times, and checks that every request got
// a complete answer or a refused connection (never a reset or an EOF after
// it was written), that the server exits 0 each time, and that every
// acknowledged change is there after the last restart.
func TestGracefulStopAnswersEveryRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and stops a server process")
	}
	bin := buildBinary(t)
	srv := &server{t: t, bin: bin, addr: freeAddr(t), env: []string{
		"DATABASE_URL=" + pgtest.NewDatabaseURL(t), "ADMIN_KEY=k", "ACTIVE_TOKENS=100",
		"HOLD_LIMIT=4", "SHUTDOWN_TIMEOUT=15s",
	}}
	srv.start()
	defer srv.kill()
	admin := &client{base: "http://" + srv.addr, http: &stdhttp.Client{Timeout: 10 * time.Second}}
	concertID, dates, seatIDs := createConcert(t, admin, 10, 50, 100)

	fans := make([]*stopFan, 32)
	var users []int64
	for i := range fans {
		// Each fan has its own transport: half keep their connection, half
		// open one per request (those reach the listener's backlog).
		tr := &stdhttp.Transport{DisableKeepAlives: i%2 == 1, MaxIdleConnsPerHost: 1}
		t.Cleanup(tr.CloseIdleConnections)
		f := &stopFan{c: &client{base: admin.base, http: &stdhttp.Client{Transport: tr, Timeout: 30 * time.Second}}}
		f.id, f.token = newFan(t, admin, fmt.Sprintf("f%d", i))
		fans[i], users = f, append(users, f.id)
	}
	l := &ledger{chargedAck: map[int64]int64{}, chargedUnk: map[int64]int64{}, holds: map[int64]int64{},
		paid: map[int64]bool{}, cancelled: map[int64]bool{}, seatOf: map[int64]int64{}}

	const rounds = 3
	for round := range rounds {
		if round > 0 {
			srv.start()
		}
		st := &stopTally{}
		var wg sync.WaitGroup
		for _, f := range fans {
			rng := rand.New(rand.NewPCG(uint64(f.id), uint64(round)))
			wg.Go(func() { st.load(f, l, seatIDs, rng) })
		}
		time.Sleep(time.Second)
		st.sigtermAt.Store(time.Now().UnixNano())
		require.NoError(t, srv.cmd.Process.Signal(syscall.SIGTERM))
		exited := make(chan error, 1)
		go func() { exited <- srv.cmd.Wait() }()
		var exitErr error
		select {
		case exitErr = <-exited:
		case <-time.After(30 * time.Second):
			t.Fatal("the server did not exit within 30s of SIGTERM")
		}
		took := time.Since(time.Unix(0, st.sigtermAt.Load()))
		wg.Wait()

		t.Logf("round %d: stop took %s; %d answers to requests sent after SIGTERM, %d refusals",
			round, took.Round(time.Millisecond), st.afterSigterm.Load(), st.refusals.Load())
		require.NoError(t, exitErr, "round %d: exit status after SIGTERM", round)
		require.Empty(t, st.cuts, "round %d: requests cut instead of answered or refused", round)
		require.Less(t, took, 15*time.Second, "round %d: the drain finished before its deadline", round)
	}
	l.mu.Lock()
	t.Logf("%d acknowledged changes, %d payments", l.acknowledged, len(l.paid))
	require.Greater(t, l.acknowledged, 20, "the load made progress")
	l.mu.Unlock()

	// Restart: every acknowledged change is there.
	srv.start()
	checkLedger(t, admin, l, concertID, dates, seatIDs, users)
}

// createConcert creates a concert with n dates from tomorrow on, seats per
// date at price, and returns its id, dates and seat ids.
func createConcert(t *testing.T, c *client, n, seats int, price int64) (int64, []string, []int64) {
	t.Helper()
	var dates []string
	for d := 1; d <= n; d++ {
		dates = append(dates, time.Now().UTC().AddDate(0, 0, d).Format("2006-01-02"))
	}
	body, _ := json.Marshal(map[string]any{"title": "stop", "dates": dates, "seatsPerDate": seats, "price": price})
	req, _ := stdhttp.NewRequest("POST", c.base+"/admin/concerts", bytes.NewReader(body))
	req.Header.Set("X-Admin-Key", "k")
	res, err := c.http.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, 201, res.StatusCode)
	var concert struct {
		ID int64 `json:"id"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&concert))
	var ids []int64
	for id := range freeSeats(t, c, concert.ID, dates) {
		ids = append(ids, id)
	}
	require.Len(t, ids, n*seats)
	return concert.ID, dates, ids
}

// newFan registers a user and returns its id and an ACTIVE token.
func newFan(t *testing.T, c *client, name string) (int64, string) {
	t.Helper()
	var u struct {
		ID int64 `json:"id"`
	}
	require.Equal(t, 201, c.do("POST", "/users", "", map[string]any{"name": name}, &u))
	var tok struct {
		Token  string `json:"token"`
		Status string `json:"status"`
	}
	require.Equal(t, 200, c.do("POST", "/users/token", "", map[string]any{"userId": u.ID}, &tok))
	require.Equal(t, "ACTIVE", tok.Status)
	return u.ID, tok.Token
}

// checkLedger checks a restarted server against what was acknowledged:
// acknowledged holds, payments and cancels are there, money is conserved,
// and a seat is free exactly when no confirmed reservation holds it.
// Unpaid holds may still be HELD (the test does not wait for their expiry).
func checkLedger(t *testing.T, c *client, l *ledger, concertID int64, dates []string, seatIDs, users []int64) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	tokens := map[int64]string{}
	for _, u := range users {
		var tok struct {
			Token string `json:"token"`
		}
		require.Equal(t, 200, c.do("POST", "/users/token", "", map[string]any{"userId": u}, &tok))
		tokens[u] = tok.Token
	}
	paidByUser := map[int64]int64{}
	confirmed, held := map[int64]bool{}, map[int64]bool{}
	for id, user := range l.holds {
		var r struct {
			Status string `json:"status"`
			Price  int64  `json:"price"`
		}
		require.Equal(t, 200, c.do("GET", fmt.Sprintf("/reservations/%d", id), tokens[user], nil, &r),
			"acknowledged hold %d survives", id)
		switch {
		case l.paid[id]:
			require.Equal(t, "CONFIRMED", r.Status, "acknowledged payment %d survives", id)
		case l.cancelled[id]:
			require.Equal(t, "CANCELLED", r.Status, "acknowledged cancel %d survives", id)
		}
		switch r.Status {
		case "CONFIRMED":
			paidByUser[user] += r.Price
			confirmed[l.seatOf[id]] = true
		case "HELD":
			held[l.seatOf[id]] = true
		}
	}
	for _, u := range users {
		var p struct {
			Balance int64 `json:"balance"`
		}
		require.Equal(t, 200, c.do("GET", fmt.Sprintf("/customers/point?userId=%d", u), "", nil, &p))
		require.GreaterOrEqual(t, p.Balance, int64(0))
		total := p.Balance + paidByUser[u]
		require.GreaterOrEqual(t, total, l.chargedAck[u], "user %d: acknowledged charges survive", u)
		require.LessOrEqual(t, total, l.chargedAck[u]+l.chargedUnk[u], "user %d: no money from nowhere", u)
	}
	free := freeSeats(t, c, concertID, dates)
	for _, seat := range seatIDs {
		if confirmed[seat] {
			require.False(t, free[seat], "sold seat %d is not offered", seat)
		} else if !held[seat] {
			require.True(t, free[seat], "seat %d is free", seat)
		}
	}
}
