package loadgen

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// fakeServer is a small in-memory implementation of the API's benchmark
// surface, enough to run every scenario against; its fault switches make
// it break one invariant on purpose.
type fakeServer struct {
	mu           sync.Mutex
	adminKey     string
	activeTokens int
	// Faults.
	oversell   bool // holds never conflict
	ignoreKeys bool // charges ignore Idempotency-Key
	lifo       bool // the newest waiting token is admitted first
	leakSeat   bool // a paid seat is still offered by available-seats
	takeLast   bool // a hold of a date's last seat is refused SEAT_UNAVAILABLE, the seat taken by nobody
	holdLimit  int  // most seats one user may hold at once (0: no limit)

	nextID       int64
	concerts     map[int64][]fakeDate
	seatOwner    map[int64]int64 // seat → reservation holding or owning it
	reservations map[int64]*fakeRes
	price        int64

	tokens    map[string]*fakeToken
	liveToken map[int64]*fakeToken // user → live token
	active    int
	line      []*fakeToken
	balance   map[int64]int64
	keys      map[string]int64 // user/key → balance answered
}

type fakeToken struct {
	tok    string
	user   int64
	status string // ACTIVE, WAIT, EXPIRED
}

type fakeDate struct {
	option int64
	day    string
	seats  []int64
}

type fakeRes struct {
	id, user, seat int64
	status         string
}

func startFake(t *testing.T, activeTokens int) (*fakeServer, string) {
	t.Helper()
	f := &fakeServer{
		adminKey: "k", activeTokens: activeTokens,
		concerts: map[int64][]fakeDate{}, seatOwner: map[int64]int64{}, reservations: map[int64]*fakeRes{},
		tokens: map[string]*fakeToken{}, liveToken: map[int64]*fakeToken{}, balance: map[int64]int64{}, keys: map[string]int64{},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: f.handle}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return f, "http://" + ln.Addr().String()
}

func (f *fakeServer) id() int64 { f.nextID++; return f.nextID }

func (f *fakeServer) fail(ctx *fasthttp.RequestCtx, status int, code string) {
	ctx.SetStatusCode(status)
	fmt.Fprintf(ctx, `{"code":%q,"message":"fake"}`, code)
}

func (f *fakeServer) json(ctx *fasthttp.RequestCtx, status int, v any) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	b, _ := json.Marshal(v)
	ctx.SetBody(b)
}

// bearer returns the token of the request, answering 401 if unknown.
func (f *fakeServer) bearer(ctx *fasthttp.RequestCtx) (*fakeToken, bool) {
	t, ok := f.tokens[strings.TrimPrefix(string(ctx.Request.Header.Peek("Authorization")), "Bearer ")]
	if !ok {
		f.fail(ctx, 401, "TOKEN_INVALID")
	}
	return t, ok
}

// activeUser returns the user of an ACTIVE token, answering 401 otherwise.
func (f *fakeServer) activeUser(ctx *fasthttp.RequestCtx) (int64, bool) {
	t, ok := f.bearer(ctx)
	if !ok {
		return 0, false
	}
	switch t.status {
	case "ACTIVE":
		return t.user, true
	case "WAIT":
		f.fail(ctx, 401, "TOKEN_NOT_ACTIVE")
	default:
		f.fail(ctx, 401, "TOKEN_INVALID")
	}
	return 0, false
}

func (f *fakeServer) position(t *fakeToken) int {
	for i, w := range f.line {
		if w == t {
			return i + 1
		}
	}
	return 0
}

func (f *fakeServer) tokenJSON(t *fakeToken) map[string]any {
	return map[string]any{"userId": t.user, "token": t.tok, "status": t.status, "position": f.position(t)}
}

// expire ends an ACTIVE token and admits the next in line.
func (f *fakeServer) expire(t *fakeToken) {
	t.status = "EXPIRED"
	delete(f.liveToken, t.user)
	f.active--
	if len(f.line) > 0 {
		i := 0
		if f.lifo {
			i = len(f.line) - 1
		}
		next := f.line[i]
		f.line = append(f.line[:i], f.line[i+1:]...)
		next.status = "ACTIVE"
		f.active++
	}
}

func (f *fakeServer) handle(ctx *fasthttp.RequestCtx) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path, method := string(ctx.Path()), string(ctx.Method())
	var in map[string]any
	_ = json.Unmarshal(ctx.PostBody(), &in)
	num := func(k string) int64 { v, _ := in[k].(float64); return int64(v) }
	switch {
	case method == "GET" && path == "/healthz":
		f.json(ctx, 200, map[string]any{"status": "ok"})
	case method == "GET" && path == "/metrics":
		fmt.Fprintf(ctx, "# TYPE queue_active gauge\nqueue_active %d\nqueue_waiting %d\n", f.active, len(f.line))
	case method == "POST" && path == "/admin/concerts":
		if string(ctx.Request.Header.Peek("X-Admin-Key")) != f.adminKey {
			f.fail(ctx, 401, "ADMIN_KEY_INVALID")
			return
		}
		cid := f.id()
		f.price = num("price")
		var dates []map[string]any
		for _, d := range in["dates"].([]any) {
			fd := fakeDate{option: f.id(), day: d.(string)}
			for range num("seatsPerDate") {
				fd.seats = append(fd.seats, f.id())
			}
			f.concerts[cid] = append(f.concerts[cid], fd)
			dates = append(dates, map[string]any{"concertOptionId": fd.option, "concertDate": fd.day, "seats": len(fd.seats)})
		}
		f.json(ctx, 201, map[string]any{"id": cid, "title": in["title"], "price": f.price, "dates": dates})
	case method == "GET" && strings.HasSuffix(path, "/available-seats"):
		cid, _ := strconv.ParseInt(strings.Split(path, "/")[2], 10, 64)
		day := string(ctx.QueryArgs().Peek("date"))
		for _, d := range f.concerts[cid] {
			if d.day != day {
				continue
			}
			seats := []map[string]any{}
			for i, s := range d.seats {
				if _, taken := f.seatOwner[s]; !taken || (f.leakSeat && i == 0) {
					seats = append(seats, map[string]any{"seatId": s, "seatNo": i + 1, "price": f.price})
				}
			}
			f.json(ctx, 200, []map[string]any{{"date": strings.ReplaceAll(day, "-", ""), "concertId": cid,
				"concertOptionId": d.option, "availableSeats": len(seats), "seats": seats}})
			return
		}
		f.fail(ctx, 404, "DATE_NOT_FOUND")
	case method == "GET" && strings.HasSuffix(path, "/available-date"):
		cid, _ := strconv.ParseInt(strings.Split(path, "/")[2], 10, 64)
		out := []map[string]any{}
		for _, d := range f.concerts[cid] {
			free := 0
			for _, s := range d.seats {
				if _, taken := f.seatOwner[s]; !taken {
					free++
				}
			}
			if free > 0 {
				out = append(out, map[string]any{"concertOptionId": d.option, "concertDate": d.day, "availableSeats": free})
			}
		}
		f.json(ctx, 200, out)
	case method == "POST" && path == "/users":
		f.json(ctx, 201, map[string]any{"id": f.id(), "name": in["name"]})
	case method == "PATCH" && path == "/customers/point":
		u, amount := num("userId"), num("chargeBalance")
		key := string(ctx.Request.Header.Peek("Idempotency-Key"))
		if key != "" && !f.ignoreKeys {
			if bal, ok := f.keys[fmt.Sprint(u, "/", key)]; ok {
				f.json(ctx, 200, map[string]any{"userId": u, "balance": bal})
				return
			}
		}
		f.balance[u] += amount
		if key != "" {
			f.keys[fmt.Sprint(u, "/", key)] = f.balance[u]
		}
		f.json(ctx, 200, map[string]any{"userId": u, "balance": f.balance[u]})
	case method == "GET" && path == "/customers/point":
		u, _ := strconv.ParseInt(string(ctx.QueryArgs().Peek("userId")), 10, 64)
		f.json(ctx, 200, map[string]any{"userId": u, "balance": f.balance[u]})
	case method == "POST" && path == "/users/token":
		u := num("userId")
		if t, ok := f.liveToken[u]; ok {
			f.json(ctx, 200, f.tokenJSON(t))
			return
		}
		t := &fakeToken{tok: fmt.Sprintf("tok-%d-%d", u, f.id()), user: u, status: "WAIT"}
		f.tokens[t.tok], f.liveToken[u] = t, t
		if f.active < f.activeTokens && len(f.line) == 0 {
			t.status = "ACTIVE"
			f.active++
		} else {
			f.line = append(f.line, t)
		}
		f.json(ctx, 200, f.tokenJSON(t))
	case method == "GET" && path == "/users/token":
		t, ok := f.bearer(ctx)
		if !ok {
			return
		}
		f.json(ctx, 200, f.tokenJSON(t))
	case method == "POST" && path == "/reservations":
		u, ok := f.activeUser(ctx)
		if !ok {
			return
		}
		seat := num("seatId")
		if _, taken := f.seatOwner[seat]; taken && !f.oversell {
			f.fail(ctx, 409, "SEAT_UNAVAILABLE")
			return
		}
		if f.takeLast && f.lastSeat(seat) {
			f.seatOwner[seat] = -1
			f.fail(ctx, 409, "SEAT_UNAVAILABLE")
			return
		}
		if f.holdLimit > 0 {
			held := 0
			for _, r := range f.reservations {
				if r.user == u && r.status == "HELD" {
					held++
				}
			}
			if held >= f.holdLimit {
				f.fail(ctx, 409, "HOLD_LIMIT")
				return
			}
		}
		r := &fakeRes{id: f.id(), user: u, seat: seat, status: "HELD"}
		f.reservations[r.id] = r
		f.seatOwner[seat] = r.id
		f.json(ctx, 200, map[string]any{"id": r.id, "userId": u, "seatId": seat, "status": r.status, "price": f.price})
	case method == "DELETE" && strings.HasPrefix(path, "/reservations/"):
		u, ok := f.activeUser(ctx)
		if !ok {
			return
		}
		id, _ := strconv.ParseInt(strings.TrimPrefix(path, "/reservations/"), 10, 64)
		r, ok := f.reservations[id]
		if !ok || r.user != u {
			f.fail(ctx, 404, "RESERVATION_NOT_FOUND")
			return
		}
		if r.status == "HELD" {
			r.status = "CANCELLED"
			if f.seatOwner[r.seat] == id {
				delete(f.seatOwner, r.seat)
			}
		}
		f.json(ctx, 200, map[string]any{"id": r.id, "status": r.status})
	case method == "POST" && path == "/payments":
		u, ok := f.activeUser(ctx)
		if !ok {
			return
		}
		r, ok := f.reservations[num("reservationId")]
		if !ok || r.user != u {
			f.fail(ctx, 404, "RESERVATION_NOT_FOUND")
			return
		}
		if num("amount") != f.price {
			f.fail(ctx, 400, "AMOUNT_MISMATCH")
			return
		}
		if len(ctx.Request.Header.Peek("Idempotency-Key")) == 0 {
			f.fail(ctx, 400, "INVALID_REQUEST")
			return
		}
		if r.status != "HELD" {
			f.fail(ctx, 409, "ALREADY_PAID")
			return
		}
		if f.balance[u] < f.price {
			f.fail(ctx, 409, "INSUFFICIENT_BALANCE")
			return
		}
		f.balance[u] -= f.price
		r.status = "CONFIRMED"
		f.expire(f.liveToken[u])
		f.json(ctx, 200, map[string]any{"id": r.id, "reservation_id": r.id, "amount": f.price, "balance": f.balance[u]})
	default:
		f.fail(ctx, 404, "NOT_FOUND")
	}
}

// lastSeat reports whether seat is the last of its date.
func (f *fakeServer) lastSeat(seat int64) bool {
	for _, ds := range f.concerts {
		for _, d := range ds {
			if d.seats[len(d.seats)-1] == seat {
				return true
			}
		}
	}
	return false
}

func testClient(t *testing.T, raw string, conns int) *Client {
	t.Helper()
	u, err := CheckTarget(raw, false)
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(u, ClientOptions{AdminKey: "k", MaxConns: conns, Timeout: 5 * time.Second})
	t.Cleanup(c.CloseIdle)
	return c
}
