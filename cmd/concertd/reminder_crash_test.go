package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	stdhttp "net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence/pgtest"
)

// TestOpenWorkResumesWithoutTraffic kills the server with SIGKILL while fans
// hold and pay, restarts it, sends no API request at all, and waits until
// the journal shows every payment saga finished (confirmed or aborted) and
// every hold past its deadline expired: the node's reminders bring the seat
// actors back by themselves. It prints how long that took.
func TestOpenWorkResumesWithoutTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a server process")
	}
	const holdTTL = 1500 * time.Millisecond
	bin := buildBinary(t)
	dbURL := pgtest.NewDatabaseURL(t)
	srv := &server{t: t, bin: bin, addr: freeAddr(t), env: []string{
		"DATABASE_URL=" + dbURL, "ADMIN_KEY=k", "ACTIVE_TOKENS=100",
		"HOLD_TTL=" + holdTTL.String(), "HOLD_LIMIT=4", "SNAPSHOT_EVERY=100000",
	}}
	srv.start()
	defer srv.kill()
	c := &client{base: "http://" + srv.addr, http: &stdhttp.Client{Timeout: 5 * time.Second}}

	dates := []string{time.Now().UTC().AddDate(0, 0, 1).Format("2006-01-02"), time.Now().UTC().AddDate(0, 0, 2).Format("2006-01-02")}
	body, _ := json.Marshal(map[string]any{"title": "reminders", "dates": dates, "seatsPerDate": 30, "price": 100})
	hreq, _ := stdhttp.NewRequest("POST", c.base+"/admin/concerts", bytes.NewReader(body))
	hreq.Header.Set("X-Admin-Key", "k")
	res, err := c.http.Do(hreq)
	require.NoError(t, err)
	require.Equal(t, 201, res.StatusCode)
	var concert struct {
		ID int64 `json:"id"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&concert))
	res.Body.Close()
	var seats []int64
	for id := range freeSeats(t, c, concert.ID, dates) {
		seats = append(seats, id)
	}

	type fan struct {
		id    int64
		token string
	}
	var fans []fan
	for i := range 16 {
		var u struct {
			ID int64 `json:"id"`
		}
		require.Equal(t, 201, c.do("POST", "/users", "", map[string]any{"name": fmt.Sprintf("f%d", i)}, &u))
		require.Equal(t, 200, c.do("PATCH", "/customers/point", "", map[string]any{"userId": u.ID, "chargeBalance": 1_000_000}, nil))
		var tok struct {
			Token string `json:"token"`
		}
		require.Equal(t, 200, c.do("POST", "/users/token", "", map[string]any{"userId": u.ID}, &tok))
		fans = append(fans, fan{u.ID, tok.Token})
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, f := range fans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(f.id), 11))
			for {
				select {
				case <-stop:
					return
				default:
				}
				var r struct {
					ID    int64 `json:"id"`
					Price int64 `json:"price"`
				}
				if c.do("POST", "/reservations", f.token, map[string]any{"userId": f.id, "seatId": seats[rng.IntN(len(seats))]}, &r) != 200 {
					continue
				}
				if rng.IntN(2) == 0 {
					continue // leave it held: it must expire without traffic
				}
				if c.do("POST", "/payments", f.token, map[string]any{"reservationId": r.ID, "amount": r.Price}, nil) == 200 {
					var tok struct {
						Token string `json:"token"`
					}
					if c.do("POST", "/users/token", "", map[string]any{"userId": f.id}, &tok) == 200 {
						f.token = tok.Token
					}
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	srv.kill()
	killed := time.Now()
	close(stop)
	wg.Wait()

	before := openWork(t, dbURL, time.Now())
	t.Logf("open work in the journal at the kill: %d holds, %d payments in flight", before.holds, before.paying)
	require.Positive(t, before.holds+before.paying, "the kill left open work to resume")

	srv.start() // waits for /readyz only: no API request reaches a seat
	restarted := time.Now()
	deadline := restarted.Add(holdTTL + 20*time.Second)
	// Every hold made before the kill is due by killed+holdTTL: from a
	// second after that, none may be open.
	allDue := killed.Add(holdTTL + time.Second)
	for {
		now := time.Now()
		w := openWork(t, dbURL, now.Add(-time.Second)) // holds due a second ago must be gone
		if now.After(allDue) && w.paying == 0 && w.holds == 0 {
			t.Logf("every saga finished and every hold expired %v after the restart (%v after the last deadline), with no request",
				time.Since(restarted).Round(time.Millisecond), time.Since(killed.Add(holdTTL)).Round(time.Millisecond))
			require.Zero(t, w.debitedUnconfirmed, "money debited without a seat: %d", w.debitedUnconfirmed)
			return
		}
		if now.After(deadline) {
			t.Fatalf("after %v without traffic: %d payments in flight, %d holds past their deadline", time.Since(restarted), w.paying, w.due)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// work is the open work a journal shows.
type work struct {
	holds, paying, due int
	// debitedUnconfirmed counts wallet debits whose reservation is not
	// CONFIRMED in its seat's journal (and not being paid).
	debitedUnconfirmed int
}

// openWork folds every seat and wallet journal as written and counts the
// holds still HELD, those due before dueBefore, and the payments in flight.
func openWork(t *testing.T, dbURL string, dueBefore time.Time) work {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT actor_id, event_type, payload FROM journal_events
		WHERE actor_id LIKE 'seat/%' OR actor_id LIKE 'wallet/%' ORDER BY actor_id, seq`)
	require.NoError(t, err)
	defer rows.Close()
	type hold struct {
		expiresMs int64
		paying    bool
		closed    bool
		confirmed bool
	}
	holds := map[int64]*hold{}
	var debits []int64
	for rows.Next() {
		var actorID, typ string
		var payload []byte
		require.NoError(t, rows.Scan(&actorID, &typ, &payload))
		mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(typ))
		require.NoError(t, err)
		m := mt.New().Interface()
		require.NoError(t, proto.Unmarshal(payload, m))
		switch e := m.(type) {
		case *messages.SeatHeld:
			holds[e.GetReservationId()] = &hold{expiresMs: e.GetExpiresAtMs()}
		case *messages.PaymentStarted:
			holds[e.GetReservationId()].paying = true
		case *messages.PaymentAborted:
			holds[e.GetReservationId()].paying = false
		case *messages.HoldCancelled, *messages.HoldExpired:
			id := e.(interface{ GetReservationId() int64 }).GetReservationId()
			holds[id].closed, holds[id].paying = true, false
		case *messages.ReservationConfirmed:
			h := holds[e.GetReservationId()]
			h.closed, h.paying, h.confirmed = true, false, true
		case *messages.PaymentDebited:
			if strings.HasPrefix(actorID, "wallet/") {
				debits = append(debits, e.GetReservationId())
			}
		}
	}
	require.NoError(t, rows.Err())
	var w work
	for _, h := range holds {
		switch {
		case h.closed:
		case h.paying:
			w.paying++
			w.holds++
		default:
			w.holds++
			if h.expiresMs <= dueBefore.UnixMilli() {
				w.due++
			}
		}
	}
	for _, id := range debits {
		if h := holds[id]; h == nil || (!h.confirmed && !h.paying) {
			w.debitedUnconfirmed++
		}
	}
	return w
}
