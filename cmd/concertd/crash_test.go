package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	stdhttp "net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/concert/ticketing/persistence/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// server is a concertd process under test.
type server struct {
	t    *testing.T
	bin  string
	env  []string
	addr string
	cmd  *exec.Cmd
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "concertd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

func (s *server) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin)
	s.cmd.Env = append(os.Environ(), s.env...)
	s.cmd.Env = append(s.cmd.Env, "HTTP_ADDR="+s.addr)
	// These tests are many clients on one address: no per-client limits.
	s.cmd.Env = append(s.cmd.Env, "RATE_USERS=0", "RATE_TOKEN_ISSUE=0", "RATE_TOKEN_POLL=0")
	s.cmd.Stdout, s.cmd.Stderr = io.Discard, io.Discard
	if testing.Verbose() {
		s.cmd.Stderr = os.Stderr
	}
	require.NoError(s.t, s.cmd.Start())
	waitFor(s.t, 30*time.Second, func() bool {
		res, err := stdhttp.Get("http://" + s.addr + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
}

// kill is kill -9: no shutdown hook runs.
func (s *server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_, _ = s.cmd.Process.Wait()
}

func waitFor(t *testing.T, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// client speaks the API; outcome reports 0 when no answer came back.
type client struct {
	base string
	http *stdhttp.Client
}

// request builds an API request: body as JSON, token as Bearer.
func (c *client) request(method, path, token string, body any) *stdhttp.Request {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := stdhttp.NewRequest(method, c.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

func (c *client) do(method, path, token string, body any, out any) int {
	res, err := c.http.Do(c.request(method, path, token, body))
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 {
		_ = json.Unmarshal(data, out)
	}
	return res.StatusCode
}

type ledger struct {
	mu           sync.Mutex
	chargedAck   map[int64]int64 // user → acknowledged charges
	chargedUnk   map[int64]int64 // user → charges whose answer was lost
	holds        map[int64]int64 // reservation → user, for every acknowledged hold
	paid         map[int64]bool  // acknowledged payments
	cancelled    map[int64]bool  // acknowledged cancels
	seatOf       map[int64]int64 // reservation → seat
	acknowledged int
}

// TestKillNineKeepsEveryAcknowledgedChange runs a mixed load, kills the
// server with SIGKILL in the middle of it, restarts it, and checks that every
// change that got a 200 is there, that money is conserved and that holds that
// expired while the server was down are released.
func TestKillNineKeepsEveryAcknowledgedChange(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a server process")
	}
	bin := buildBinary(t)
	dbURL := pgtest.NewDatabaseURL(t)
	srv := &server{t: t, bin: bin, addr: freeAddr(t), env: []string{
		"DATABASE_URL=" + dbURL, "ADMIN_KEY=k", "ACTIVE_TOKENS=100",
		"HOLD_TTL=1500ms", "HOLD_LIMIT=4", "SNAPSHOT_EVERY=20",
	}}
	srv.start()
	defer srv.kill()
	c := &client{base: "http://" + srv.addr, http: &stdhttp.Client{Timeout: 5 * time.Second}}

	var concert struct {
		ID    int64 `json:"id"`
		Dates []struct {
			ConcertDate string `json:"concertDate"`
		} `json:"dates"`
	}
	var dates []string
	for d := 1; d <= 3; d++ {
		dates = append(dates, time.Now().UTC().AddDate(0, 0, d).Format("2006-01-02"))
	}
	body, _ := json.Marshal(map[string]any{"title": "crash", "dates": dates, "seatsPerDate": 20, "price": 100})
	hreq, _ := stdhttp.NewRequest("POST", c.base+"/admin/concerts", bytes.NewReader(body))
	hreq.Header.Set("X-Admin-Key", "k")
	hreq.Header.Set("Content-Type", "application/json")
	res, err := c.http.Do(hreq)
	require.NoError(t, err)
	require.Equal(t, 201, res.StatusCode)
	require.NoError(t, json.NewDecoder(res.Body).Decode(&concert))
	res.Body.Close()
	free := freeSeats(t, c, concert.ID, dates)
	require.Len(t, free, 60)
	var seatIDs []int64
	for id := range free {
		seatIDs = append(seatIDs, id)
	}

	const users = 20
	type fan struct {
		id    int64
		token string
	}
	fans := make([]fan, users)
	for i := range fans {
		var u struct {
			ID int64 `json:"id"`
		}
		require.Equal(t, 201, c.do("POST", "/users", "", map[string]any{"name": fmt.Sprintf("u%d", i)}, &u))
		var tok struct {
			Token  string `json:"token"`
			Status string `json:"status"`
		}
		require.Equal(t, 200, c.do("POST", "/users/token", "", map[string]any{"userId": u.ID}, &tok))
		require.Equal(t, "ACTIVE", tok.Status)
		fans[i] = fan{id: u.ID, token: tok.Token}
	}

	l := &ledger{chargedAck: map[int64]int64{}, chargedUnk: map[int64]int64{}, holds: map[int64]int64{},
		paid: map[int64]bool{}, cancelled: map[int64]bool{}, seatOf: map[int64]int64{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, f := range fans {
		wg.Add(1)
		go func(f fan) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(f.id), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				amount := int64(50 + rng.IntN(200))
				code := c.do("PATCH", "/customers/point", "", map[string]any{"userId": f.id, "chargeBalance": amount}, nil)
				l.mu.Lock()
				switch code {
				case 200:
					l.chargedAck[f.id] += amount
					l.acknowledged++
				case 0, 503:
					l.chargedUnk[f.id] += amount
				}
				l.mu.Unlock()

				seat := seatIDs[rng.IntN(len(seatIDs))]
				var r struct {
					ID    int64 `json:"id"`
					Price int64 `json:"price"`
				}
				if c.do("POST", "/reservations", f.token, map[string]any{"userId": f.id, "seatId": seat}, &r) != 200 {
					continue
				}
				l.mu.Lock()
				l.holds[r.ID], l.seatOf[r.ID] = f.id, seat
				l.acknowledged++
				l.mu.Unlock()
				switch rng.IntN(3) {
				case 0:
					if c.do("DELETE", fmt.Sprintf("/reservations/%d", r.ID), f.token, nil, nil) == 200 {
						l.mu.Lock()
						l.cancelled[r.ID] = true
						l.mu.Unlock()
					}
				case 1:
					if c.do("POST", "/payments", f.token, map[string]any{"reservationId": r.ID, "amount": r.Price}, nil) == 200 {
						l.mu.Lock()
						l.paid[r.ID] = true
						l.mu.Unlock()
						// The token expired with the payment: queue again.
						var tok struct {
							Token string `json:"token"`
						}
						for c.do("POST", "/users/token", "", map[string]any{"userId": f.id}, &tok) != 200 {
							select {
							case <-stop:
								return
							default:
							}
						}
						f.token = tok.Token
					}
				}
			}
		}(f)
	}
	time.Sleep(2 * time.Second)
	// The checks below want progress before the kill, which a busy machine
	// may need longer than 2 s for.
	waitFor(t, time.Minute, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.acknowledged > 20 && len(l.paid) > 0
	})
	srv.kill()
	close(stop)
	wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("before the kill: %d acknowledged changes, %d holds, %d payments, %d cancels", l.acknowledged, len(l.holds), len(l.paid), len(l.cancelled))
	require.Greater(t, l.acknowledged, 20, "the load made progress before the kill")
	require.NotEmpty(t, l.paid, "some payments were acknowledged before the kill")

	time.Sleep(1600 * time.Millisecond) // every unpaid hold is past its expiry
	srv.start()

	// Fresh tokens to read reservations with.
	tokens := map[int64]string{}
	for _, f := range fans {
		var tok struct {
			Token  string `json:"token"`
			Status string `json:"status"`
		}
		require.Equal(t, 200, c.do("POST", "/users/token", "", map[string]any{"userId": f.id}, &tok))
		require.Equal(t, "ACTIVE", tok.Status)
		tokens[f.id] = tok.Token
	}
	paidByUser := map[int64]int64{}
	confirmedSeat := map[int64]bool{}
	for id, user := range l.holds {
		var r struct {
			Status string `json:"status"`
			Price  int64  `json:"price"`
		}
		// A payment the kill cut short is finished by the recovered seat
		// actor, which its reminder wakes at the start; until the wallet
		// has answered, the hold reads HELD (no reservation below may end
		// HELD).
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			require.Equal(t, 200, c.do("GET", fmt.Sprintf("/reservations/%d", id), tokens[user], nil, &r),
				"acknowledged hold %d survives", id)
			if r.Status != "HELD" || time.Now().After(deadline) {
				break
			}
		}
		switch {
		case l.paid[id]:
			require.Equal(t, "CONFIRMED", r.Status, "acknowledged payment %d survives", id)
		case l.cancelled[id]:
			require.Equal(t, "CANCELLED", r.Status, "acknowledged cancel %d survives", id)
		default:
			require.Contains(t, []string{"EXPIRED", "CONFIRMED", "CANCELLED"}, r.Status,
				"unpaid hold %d was released after its expiry", id)
		}
		if r.Status == "CONFIRMED" {
			paidByUser[user] += r.Price
			confirmedSeat[l.seatOf[id]] = true
		}
	}
	for _, f := range fans {
		var p struct {
			Balance int64 `json:"balance"`
		}
		require.Equal(t, 200, c.do("GET", fmt.Sprintf("/customers/point?userId=%d", f.id), "", nil, &p))
		require.GreaterOrEqual(t, p.Balance, int64(0))
		total := p.Balance + paidByUser[f.id]
		require.GreaterOrEqual(t, total, l.chargedAck[f.id], "user %d: acknowledged charges survive", f.id)
		require.LessOrEqual(t, total, l.chargedAck[f.id]+l.chargedUnk[f.id], "user %d: no money from nowhere", f.id)
	}
	// A seat is offered again exactly when no confirmed reservation holds it:
	// released holds gave their seats back, sold seats stay sold.
	free = freeSeats(t, c, concert.ID, dates)
	for _, seat := range seatIDs {
		require.Equal(t, !confirmedSeat[seat], free[seat], "seat %d", seat)
	}
}

// freeSeats lists the free seats of every date of a concert.
func freeSeats(t *testing.T, c *client, concertID int64, dates []string) map[int64]bool {
	t.Helper()
	free := map[int64]bool{}
	for _, d := range dates {
		var avail []struct {
			Seats []struct {
				SeatID int64 `json:"seatId"`
			} `json:"seats"`
		}
		require.Equal(t, 200, c.do("GET", fmt.Sprintf("/concerts/%d/available-seats?date=%s", concertID, d), "", nil, &avail))
		for _, a := range avail {
			for _, s := range a.Seats {
				free[s.SeatID] = true
			}
		}
	}
	return free
}
