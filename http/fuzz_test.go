package http_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	stdhttp "net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/concert/ticketing/node"
)

// fuzzNode is the node and catalog every input of FuzzClientText runs on.
type fuzzNode struct {
	*env
	concertID int64
	date      string
	seats     []int64
	nextSeat  atomic.Int64
}

// A slot is one place client text enters the API; it builds the request
// carrying v there. header reports a slot whose text goes into a header
// line (which cannot hold CR or LF).
type slot struct {
	name   string
	header bool
	send   func(fz *fuzzNode, t *testing.T, v string) rawReply
}

// rawReply is one answer to a raw request.
type rawReply struct {
	status int
	body   []byte
}

// fuzzSlots lists every request decoder and every text field of the API.
func fuzzSlots() []slot {
	post := func(method, path string, h ...string) func(*fuzzNode, *testing.T, string) rawReply {
		return func(fz *fuzzNode, t *testing.T, v string) rawReply { return rawDo(t, fz.base, method, path, v, h...) }
	}
	return []slot{
		{name: "name", send: func(fz *fuzzNode, t *testing.T, v string) rawReply {
			r := rawDo(t, fz.base, "POST", "/users", `{"name":`+rawJSONString(v)+`}`)
			if r.status == 201 {
				var u struct{ Name string }
				require.NoError(t, json.Unmarshal(r.body, &u))
				require.Equal(t, strings.TrimSpace(v), u.Name, "the name is stored as sent")
			}
			return r
		}},
		{name: "title", send: func(fz *fuzzNode, t *testing.T, v string) rawReply {
			r := rawDo(t, fz.base, "POST", "/admin/concerts",
				`{"title":`+rawJSONString(v)+`,"dates":["2031-01-01"],"seatsPerDate":1,"price":10}`, "X-Admin-Key", adminKey)
			if r.status == 201 {
				var k struct{ Title string }
				require.NoError(t, json.Unmarshal(r.body, &k))
				require.Equal(t, strings.TrimSpace(v), k.Title, "the title is stored as sent")
			}
			return r
		}},
		{name: "date in dates", send: func(fz *fuzzNode, t *testing.T, v string) rawReply {
			return rawDo(t, fz.base, "POST", "/admin/concerts",
				`{"title":"t","dates":[`+rawJSONString(v)+`],"seatsPerDate":1,"price":10}`, "X-Admin-Key", adminKey)
		}},
		{name: "payment Idempotency-Key", header: true, send: (*fuzzNode).payWithKey},
		{name: "charge Idempotency-Key", header: true, send: func(fz *fuzzNode, t *testing.T, v string) rawReply {
			u := fz.user()
			r := rawDo(t, fz.base, "PATCH", "/customers/point", fmt.Sprintf(`{"userId":%d,"chargeBalance":7}`, u), "Idempotency-Key", v)
			want := int64(0)
			if r.status == 200 {
				want = 7
			}
			require.Equal(t, want, fz.balance(u), "a refused charge changes nothing")
			return r
		}},
		{name: "bearer token (read)", header: true, send: func(fz *fuzzNode, t *testing.T, v string) rawReply {
			return rawDo(t, fz.base, "GET", "/users/token", "", "Authorization", "Bearer "+v)
		}},
		{name: "bearer token (hold)", header: true, send: func(fz *fuzzNode, t *testing.T, v string) rawReply {
			return rawDo(t, fz.base, "POST", "/reservations", `{"userId":1,"seatId":1}`, "Authorization", "Bearer "+v)
		}},
		{name: "X-Admin-Key", header: true, send: func(fz *fuzzNode, t *testing.T, v string) rawReply {
			return rawDo(t, fz.base, "POST", "/admin/concerts", `{"title":"t","dates":["2031-01-02"],"price":10}`, "X-Admin-Key", v)
		}},
		{name: "query date", send: func(fz *fuzzNode, t *testing.T, v string) rawReply {
			return rawDo(t, fz.base, "GET", fmt.Sprintf("/concerts/%d/available-seats?date=%s", fz.concertID, url.QueryEscape(v)), "")
		}},
		{name: "query userId", send: func(fz *fuzzNode, t *testing.T, v string) rawReply {
			return rawDo(t, fz.base, "GET", "/customers/point?userId="+url.QueryEscape(v), "")
		}},
		{name: "path reservation id", send: func(fz *fuzzNode, t *testing.T, v string) rawReply {
			return rawDo(t, fz.base, "GET", "/reservations/"+url.PathEscape(v), "", "Authorization", "Bearer "+fz.token(fz.user()))
		}},
		{name: "path concert id", send: func(fz *fuzzNode, t *testing.T, v string) rawReply {
			return rawDo(t, fz.base, "GET", "/concerts/"+url.PathEscape(v)+"/available-date", "")
		}},
		{name: "body of POST /users", send: post("POST", "/users")},
		{name: "body of POST /users/token", send: post("POST", "/users/token")},
		{name: "body of POST /admin/concerts", send: post("POST", "/admin/concerts", "X-Admin-Key", adminKey)},
		{name: "body of POST /reservations", send: func(fz *fuzzNode, t *testing.T, v string) rawReply {
			return rawDo(t, fz.base, "POST", "/reservations", v, "Authorization", "Bearer "+fz.token(fz.user()))
		}},
		{name: "body of PATCH /customers/point", send: post("PATCH", "/customers/point")},
		{name: "body of POST /payments", send: func(fz *fuzzNode, t *testing.T, v string) rawReply {
			return rawDo(t, fz.base, "POST", "/payments", v, "Authorization", "Bearer "+fz.token(fz.user()))
		}},
	}
}

// FuzzClientText sends a value v in every place client text enters the API
// (slot picks the place) to a node on a real PostgreSQL, so v goes as far
// as the catalog and the journal when it is accepted. Whatever v is, the
// answer is never a 5xx, and text that is not valid UTF-8 or holds a NUL
// is always 400 INVALID_REQUEST (and changes nothing). The seed corpus is
// in testdata/fuzz/FuzzClientText; `go test` runs it.
func FuzzClientText(f *testing.F) {
	slots := fuzzSlots()
	korean := strings.Repeat("가", 255)
	for i := range slots {
		for _, v := range []string{"ok-1", "pay-\xff\xfe", "a\x00b", korean, korean + "가", "", " 12 "} {
			f.Add(uint8(i), v)
		}
	}
	fz := startFuzzNode(f)
	f.Fuzz(func(t *testing.T, slotN uint8, v string) {
		s := slots[int(slotN)%len(slots)]
		if len(v) > 3000 { // keep every request under the header and body limits
			v = v[:3000]
		}
		if s.header {
			v = strings.NewReplacer("\r", "", "\n", "").Replace(v)
		}
		fz.env.t = t
		r := s.send(fz, t, v)
		require.Less(t, r.status, 500, "slot %q, value %q: %s", s.name, v, r.body)
		if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
			require.Equal(t, 400, r.status, "slot %q, value %q: %s", s.name, v, r.body)
			var e struct{ Code string }
			require.NoError(t, json.Unmarshal(r.body, &e), "%s", r.body)
			require.Equal(t, "INVALID_REQUEST", e.Code, "slot %q, value %q", s.name, v)
		}
	})
}

func startFuzzNode(f *testing.F) *fuzzNode {
	f.Helper()
	// A fuzzing machine is busy: a 503 for load would be saved as a crash.
	e := startNodeTB(f, node.Config{AdminKey: adminKey, RequestTimeout: 10 * time.Second, HoldLimit: 1000, ActiveTokens: 100000})
	fz := &fuzzNode{env: e, date: day(1)}
	r := rawDo(f, e.base, "POST", "/admin/concerts",
		fmt.Sprintf(`{"title":"fuzz","dates":[%q],"seatsPerDate":1000,"price":100}`, fz.date), "X-Admin-Key", adminKey)
	require.Equal(f, 201, r.status, "%s", r.body)
	var k struct{ ID int64 }
	require.NoError(f, json.Unmarshal(r.body, &k))
	fz.concertID = k.ID
	r = rawDo(f, e.base, "GET", fmt.Sprintf("/concerts/%d/available-seats?date=%s", k.ID, fz.date), "")
	var avail []struct{ Seats []struct{ SeatID int64 } }
	require.NoError(f, json.Unmarshal(r.body, &avail))
	for _, s := range avail[0].Seats {
		fz.seats = append(fz.seats, s.SeatID)
	}
	return fz
}

// user registers a user and returns its id.
func (fz *fuzzNode) user() int64 {
	r := rawDo(fz.env.t, fz.base, "POST", "/users", `{"name":"fan"}`)
	require.Equal(fz.env.t, 201, r.status, "%s", r.body)
	var u struct{ ID int64 }
	require.NoError(fz.env.t, json.Unmarshal(r.body, &u))
	return u.ID
}

// token returns an ACTIVE token of user.
func (fz *fuzzNode) token(user int64) string {
	r := rawDo(fz.env.t, fz.base, "POST", "/users/token", fmt.Sprintf(`{"userId":%d}`, user))
	require.Equal(fz.env.t, 200, r.status, "%s", r.body)
	var tok struct{ Token, Status string }
	require.NoError(fz.env.t, json.Unmarshal(r.body, &tok))
	require.Equal(fz.env.t, "ACTIVE", tok.Status)
	return tok.Token
}

func (fz *fuzzNode) balance(user int64) int64 {
	r := rawDo(fz.env.t, fz.base, "GET", fmt.Sprintf("/customers/point?userId=%d", user), "")
	require.Equal(fz.env.t, 200, r.status, "%s", r.body)
	var p struct{ Balance int64 }
	require.NoError(fz.env.t, json.Unmarshal(r.body, &p))
	return p.Balance
}

// payWithKey holds a seat for a new user with enough points and pays it
// with Idempotency-Key v: refused, nothing changed; accepted, a retry with
// the same key answers the same payment.
func (fz *fuzzNode) payWithKey(t *testing.T, v string) rawReply {
	i := fz.nextSeat.Add(1) - 1
	if int(i) >= len(fz.seats) {
		t.Skip("no free seat left")
	}
	u := fz.user()
	tok := fz.token(u)
	require.Equal(t, 200, rawDo(t, fz.base, "PATCH", "/customers/point", fmt.Sprintf(`{"userId":%d,"chargeBalance":100}`, u)).status)
	h := rawDo(t, fz.base, "POST", "/reservations", fmt.Sprintf(`{"userId":%d,"seatId":%d}`, u, fz.seats[i]), "Authorization", "Bearer "+tok)
	require.Equal(t, 200, h.status, "%s", h.body)
	var res struct{ ID int64 }
	require.NoError(t, json.Unmarshal(h.body, &res))
	pay := func() rawReply {
		return rawDo(t, fz.base, "POST", "/payments", fmt.Sprintf(`{"reservationId":%d,"amount":100}`, res.ID),
			"Authorization", "Bearer "+tok, "Idempotency-Key", v)
	}
	r := pay()
	get := rawDo(t, fz.base, "GET", fmt.Sprintf("/reservations/%d", res.ID), "", "Authorization", "Bearer "+tok)
	require.Equal(t, 200, get.status, "%s", get.body)
	var state struct{ Status string }
	require.NoError(t, json.Unmarshal(get.body, &state))
	if r.status != 200 {
		require.Equal(t, "HELD", state.Status, "a refused payment changes nothing")
		require.Equal(t, int64(100), fz.balance(u), "a refused payment changes nothing")
		return r
	}
	require.Equal(t, "CONFIRMED", state.Status)
	require.Equal(t, int64(0), fz.balance(u))
	if strings.TrimSpace(v) != "" { // HTTP drops a header value's surrounding blanks
		again := pay()
		require.Equal(t, 200, again.status, "a retry with the key answers the payment: %s", again.body)
		require.JSONEq(t, string(r.body), string(again.body))
	}
	return r
}

// rawJSONString quotes v as a JSON string without touching bytes JSON
// allows as they are — invalid UTF-8 stays invalid, so that the server's
// decoder meets it.
func rawJSONString(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// rawDo writes one HTTP/1.1 request byte for byte — headers may hold any
// byte but CR and LF, which net/http's client refuses to send — and reads
// the answer. h holds header name, value pairs.
func rawDo(t testing.TB, base, method, path, body string, h ...string) rawReply {
	t.Helper()
	addr := strings.TrimPrefix(base, "http://")
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %d\r\n",
		method, path, addr, len(body))
	for i := 0; i+1 < len(h); i += 2 {
		fmt.Fprintf(&req, "%s: %s\r\n", h[i], h[i+1])
	}
	req.WriteString("\r\n")
	req.WriteString(body)
	_, err = conn.Write(req.Bytes())
	require.NoError(t, err)
	res, err := stdhttp.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "%s %q", method, path)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return rawReply{status: res.StatusCode, body: raw}
}
