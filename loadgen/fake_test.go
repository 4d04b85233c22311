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
// surface, enough to run Setup, RunHolds and RunHot against.
type fakeServer struct {
	mu           sync.Mutex
	adminKey     string
	activeTokens int
	oversell     bool // if set, holds never conflict (a broken server)
	nextID       int64
	concerts     map[int64][]fakeDate
	seatOwner    map[int64]int64 // seat → reservation holding or owning it
	seatSold     map[int64]bool
	reservations map[int64]*fakeRes
	tokens       map[string]int64 // token → user
	active       int
	activeUsers  map[int64]bool
	price        int64
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
		concerts: map[int64][]fakeDate{}, seatOwner: map[int64]int64{}, seatSold: map[int64]bool{},
		reservations: map[int64]*fakeRes{}, tokens: map[string]int64{}, activeUsers: map[int64]bool{},
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

func (f *fakeServer) user(ctx *fasthttp.RequestCtx) (int64, bool) {
	tok := strings.TrimPrefix(string(ctx.Request.Header.Peek("Authorization")), "Bearer ")
	u, ok := f.tokens[tok]
	if !ok {
		f.fail(ctx, 401, "TOKEN_INVALID")
	}
	return u, ok
}

func (f *fakeServer) handle(ctx *fasthttp.RequestCtx) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path, method := string(ctx.Path()), string(ctx.Method())
	var in map[string]any
	_ = json.Unmarshal(ctx.PostBody(), &in)
	num := func(k string) int64 { v, _ := in[k].(float64); return int64(v) }
	switch {
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
			var seats []map[string]any
			for i, s := range d.seats {
				if _, taken := f.seatOwner[s]; !taken {
					seats = append(seats, map[string]any{"seatId": s, "seatNo": i + 1, "price": f.price})
				}
			}
			f.json(ctx, 200, []map[string]any{{"date": strings.ReplaceAll(day, "-", ""), "concertId": cid,
				"concertOptionId": d.option, "availableSeats": len(seats), "seats": seats}})
			return
		}
		f.fail(ctx, 404, "DATE_NOT_FOUND")
	case method == "POST" && path == "/users":
		f.json(ctx, 201, map[string]any{"id": f.id(), "name": in["name"]})
	case method == "PATCH" && path == "/customers/point":
		f.json(ctx, 200, map[string]any{"userId": num("userId"), "balance": num("chargeBalance")})
	case method == "POST" && path == "/users/token":
		tok := fmt.Sprintf("tok-%d", num("userId"))
		f.tokens[tok] = num("userId")
		status := "WAIT"
		if f.active < f.activeTokens {
			f.active++
			f.activeUsers[num("userId")] = true
			status = "ACTIVE"
		}
		f.json(ctx, 200, map[string]any{"userId": num("userId"), "token": tok, "status": status})
	case method == "GET" && path == "/users/token":
		u, ok := f.user(ctx)
		if !ok {
			return
		}
		status, pos := "ACTIVE", 0
		if !f.activeUsers[u] {
			status, pos = "WAIT", 1
		}
		f.json(ctx, 200, map[string]any{"userId": u, "token": fmt.Sprintf("tok-%d", u), "status": status, "position": pos})
	case method == "POST" && path == "/reservations":
		u, ok := f.user(ctx)
		if !ok {
			return
		}
		seat := num("seatId")
		if _, taken := f.seatOwner[seat]; taken && !f.oversell {
			f.fail(ctx, 409, "SEAT_UNAVAILABLE")
			return
		}
		r := &fakeRes{id: f.id(), user: u, seat: seat, status: "HELD"}
		f.reservations[r.id] = r
		f.seatOwner[seat] = r.id
		f.json(ctx, 200, map[string]any{"id": r.id, "userId": u, "seatId": seat, "status": r.status, "price": f.price})
	case method == "DELETE" && strings.HasPrefix(path, "/reservations/"):
		if _, ok := f.user(ctx); !ok {
			return
		}
		id, _ := strconv.ParseInt(strings.TrimPrefix(path, "/reservations/"), 10, 64)
		r, ok := f.reservations[id]
		if !ok {
			f.fail(ctx, 404, "RESERVATION_NOT_FOUND")
			return
		}
		r.status = "CANCELLED"
		if f.seatOwner[r.seat] == id {
			delete(f.seatOwner, r.seat)
		}
		f.json(ctx, 200, map[string]any{"id": r.id, "status": r.status})
	case method == "POST" && path == "/payments":
		u, ok := f.user(ctx)
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
		r.status = "CONFIRMED"
		f.json(ctx, 200, map[string]any{"id": f.id(), "reservation_id": r.id, "amount": f.price})
	default:
		f.fail(ctx, 404, "NOT_FOUND")
	}
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
