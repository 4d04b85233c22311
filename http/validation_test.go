package http

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	stdhttp "net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// do sends one request to app through Fiber's test hook.
func do(t *testing.T, cfg Config, method, path, body string, header map[string]string) (*stdhttp.Response, apiError) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	app := New(cfg)
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := app.Test(req, -1)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	var e apiError
	if res.StatusCode >= 400 {
		require.NoError(t, json.Unmarshal(b, &e), "error body %q", b)
		require.NotEmpty(t, e.Code)
		require.NotEmpty(t, e.Message)
	}
	return res, e
}

func TestInputValidation(t *testing.T) {
	admin := map[string]string{"X-Admin-Key": "k"}
	auth := map[string]string{"Authorization": "Bearer t"}
	tests := []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
		code                     string // "" when 2xx
		call                     string // booking method expected to be reached
	}{
		{"user ok", "POST", "/users", `{"name":"a","extra":1}`, nil, 201, "", "CreateUser"},
		{"user malformed", "POST", "/users", `{"name":`, nil, 400, "INVALID_REQUEST", ""},
		{"user not object", "POST", "/users", `["a"]`, nil, 400, "INVALID_REQUEST", ""},
		{"user empty body", "POST", "/users", ``, nil, 400, "INVALID_REQUEST", ""},
		{"user trailing data", "POST", "/users", `{"name":"a"} {}`, nil, 400, "INVALID_REQUEST", ""},
		{"user missing name", "POST", "/users", `{}`, nil, 400, "INVALID_REQUEST", ""},
		{"user null name", "POST", "/users", `{"name":null}`, nil, 400, "INVALID_REQUEST", ""},
		{"user name number", "POST", "/users", `{"name":5}`, nil, 400, "INVALID_REQUEST", ""},
		{"user blank name", "POST", "/users", `{"name":"  "}`, nil, 400, "INVALID_REQUEST", ""},
		{"user long name", "POST", "/users", `{"name":"` + strings.Repeat("x", 101) + `"}`, nil, 400, "INVALID_REQUEST", ""},

		{"token ok", "POST", "/users/token", `{"userId":1}`, nil, 200, "", "IssueToken"},
		{"token id string", "POST", "/users/token", `{"userId":"1"}`, nil, 400, "INVALID_REQUEST", ""},
		{"token id float", "POST", "/users/token", `{"userId":1.5}`, nil, 400, "INVALID_REQUEST", ""},
		{"token id exp", "POST", "/users/token", `{"userId":1e2}`, nil, 400, "INVALID_REQUEST", ""},
		{"token id zero", "POST", "/users/token", `{"userId":0}`, nil, 400, "INVALID_REQUEST", ""},
		{"token id negative", "POST", "/users/token", `{"userId":-3}`, nil, 400, "INVALID_REQUEST", ""},
		{"token id overflow", "POST", "/users/token", `{"userId":9223372036854775808}`, nil, 400, "INVALID_REQUEST", ""},
		{"token id bool", "POST", "/users/token", `{"userId":true}`, nil, 400, "INVALID_REQUEST", ""},
		{"token id max", "POST", "/users/token", `{"userId":9223372036854775807}`, nil, 200, "", "IssueToken"},
		{"get token", "GET", "/users/token", ``, auth, 200, "", "Token"},

		{"dates bad id", "GET", "/concerts/abc/available-date", ``, nil, 400, "INVALID_REQUEST", ""},
		{"dates zero id", "GET", "/concerts/0/available-date", ``, nil, 400, "INVALID_REQUEST", ""},
		{"dates overflow id", "GET", "/concerts/99999999999999999999/available-date", ``, nil, 400, "INVALID_REQUEST", ""},
		{"seats dash date", "GET", "/concerts/1/available-seats?date=2024-10-10", ``, nil, 200, "", "AvailableSeats"},
		{"seats compact date", "GET", "/concerts/1/available-seats?date=20241010", ``, nil, 200, "", "AvailableSeats"},
		{"seats missing date", "GET", "/concerts/1/available-seats", ``, nil, 400, "INVALID_REQUEST", ""},
		{"seats bad date", "GET", "/concerts/1/available-seats?date=2024-13-01", ``, nil, 400, "INVALID_REQUEST", ""},
		{"seats junk date", "GET", "/concerts/1/available-seats?date=tomorrow", ``, nil, 400, "INVALID_REQUEST", ""},

		{"admin ok", "POST", "/admin/concerts", `{"title":"t","dates":["2030-01-01"],"price":10}`, admin, 201, "", "CreateConcert"},
		{"admin no key", "POST", "/admin/concerts", `{"title":"t","dates":["2030-01-01"],"price":10}`, nil, 401, "ADMIN_KEY_INVALID", ""},
		{"admin wrong key", "POST", "/admin/concerts", `{}`, map[string]string{"X-Admin-Key": "x"}, 401, "ADMIN_KEY_INVALID", ""},
		{"admin empty title", "POST", "/admin/concerts", `{"title":"","dates":["2030-01-01"],"price":10}`, admin, 400, "INVALID_REQUEST", ""},
		{"admin no dates", "POST", "/admin/concerts", `{"title":"t","dates":[],"price":10}`, admin, 400, "INVALID_REQUEST", ""},
		{"admin dup dates", "POST", "/admin/concerts", `{"title":"t","dates":["2030-01-01","2030-01-01"],"price":10}`, admin, 400, "INVALID_REQUEST", ""},
		{"admin bad date", "POST", "/admin/concerts", `{"title":"t","dates":["2030-1-1"],"price":10}`, admin, 400, "INVALID_REQUEST", ""},
		{"admin date number", "POST", "/admin/concerts", `{"title":"t","dates":[20300101],"price":10}`, admin, 400, "INVALID_REQUEST", ""},
		{"admin seats zero", "POST", "/admin/concerts", `{"title":"t","dates":["2030-01-01"],"seatsPerDate":0,"price":10}`, admin, 400, "INVALID_REQUEST", ""},
		{"admin seats big", "POST", "/admin/concerts", `{"title":"t","dates":["2030-01-01"],"seatsPerDate":1001,"price":10}`, admin, 400, "INVALID_REQUEST", ""},
		{"admin negative price", "POST", "/admin/concerts", `{"title":"t","dates":["2030-01-01"],"price":-1}`, admin, 400, "INVALID_REQUEST", ""},
		{"admin zero price", "POST", "/admin/concerts", `{"title":"t","dates":["2030-01-01"],"price":0}`, admin, 400, "INVALID_REQUEST", ""},
		{"admin price 1", "POST", "/admin/concerts", `{"title":"t","dates":["2030-01-01"],"price":1}`, admin, 201, "", "CreateConcert"},
		{"admin missing price", "POST", "/admin/concerts", `{"title":"t","dates":["2030-01-01"]}`, admin, 400, "INVALID_REQUEST", ""},

		{"hold ok", "POST", "/reservations", `{"userId":1,"seatId":2}`, auth, 200, "", "Hold"},
		{"hold missing seat", "POST", "/reservations", `{"userId":1}`, auth, 400, "INVALID_REQUEST", ""},
		{"hold seat float", "POST", "/reservations", `{"userId":1,"seatId":2.0}`, auth, 400, "INVALID_REQUEST", ""},
		{"get reservation bad id", "GET", "/reservations/x", ``, auth, 400, "INVALID_REQUEST", ""},
		{"get reservation negative", "GET", "/reservations/-1", ``, auth, 400, "INVALID_REQUEST", ""},
		{"delete reservation zero", "DELETE", "/reservations/0", ``, auth, 400, "INVALID_REQUEST", ""},

		{"points ok", "GET", "/customers/point?userId=1", ``, nil, 200, "", "Balance"},
		{"points missing user", "GET", "/customers/point", ``, nil, 400, "INVALID_REQUEST", ""},
		{"points bad user", "GET", "/customers/point?userId=1.5", ``, nil, 400, "INVALID_REQUEST", ""},
		{"charge ok", "PATCH", "/customers/point", `{"userId":1,"chargeBalance":100}`, nil, 200, "", "Charge"},
		{"charge zero", "PATCH", "/customers/point", `{"userId":1,"chargeBalance":0}`, nil, 400, "INVALID_AMOUNT", ""},
		{"charge negative", "PATCH", "/customers/point", `{"userId":1,"chargeBalance":-5}`, nil, 400, "INVALID_AMOUNT", ""},
		{"charge float", "PATCH", "/customers/point", `{"userId":1,"chargeBalance":1.5}`, nil, 400, "INVALID_AMOUNT", ""},
		{"charge overflow", "PATCH", "/customers/point", `{"userId":1,"chargeBalance":99999999999999999999}`, nil, 400, "INVALID_AMOUNT", ""},
		{"charge string", "PATCH", "/customers/point", `{"userId":1,"chargeBalance":"5"}`, nil, 400, "INVALID_REQUEST", ""},
		{"charge missing", "PATCH", "/customers/point", `{"userId":1}`, nil, 400, "INVALID_REQUEST", ""},

		{"pay ok", "POST", "/payments", `{"reservationId":1,"amount":10}`, auth, 200, "", "Pay"},
		{"pay zero amount", "POST", "/payments", `{"reservationId":1,"amount":0}`, auth, 400, "INVALID_AMOUNT", ""},
		{"pay missing reservation", "POST", "/payments", `{"amount":10}`, auth, 400, "INVALID_REQUEST", ""},
		{"pay long key", "POST", "/payments", `{"reservationId":1,"amount":10}`,
			map[string]string{"Authorization": "Bearer t", "Idempotency-Key": strings.Repeat("k", 256)}, 400, "INVALID_REQUEST", ""},
		{"pay 255 Korean characters key", "POST", "/payments", `{"reservationId":1,"amount":10}`,
			map[string]string{"Authorization": "Bearer t", "Idempotency-Key": strings.Repeat("가", 255)}, 200, "", "Pay"},
		{"pay 256 Korean characters key", "POST", "/payments", `{"reservationId":1,"amount":10}`,
			map[string]string{"Authorization": "Bearer t", "Idempotency-Key": strings.Repeat("가", 256)}, 400, "INVALID_REQUEST", ""},
		{"pay key not UTF-8", "POST", "/payments", `{"reservationId":1,"amount":10}`,
			map[string]string{"Authorization": "Bearer t", "Idempotency-Key": "pay-\xff\xfe"}, 400, "INVALID_REQUEST", ""},
		{"pay token not UTF-8", "POST", "/payments", `{"reservationId":1,"amount":10}`,
			map[string]string{"Authorization": "Bearer t\xff"}, 400, "INVALID_REQUEST", ""},
		{"pay token too long", "POST", "/payments", `{"reservationId":1,"amount":10}`,
			map[string]string{"Authorization": "Bearer " + strings.Repeat("t", 256)}, 400, "INVALID_REQUEST", ""},
		{"charge with key", "PATCH", "/customers/point", `{"userId":1,"chargeBalance":100}`,
			map[string]string{"Idempotency-Key": strings.Repeat("가", 255)}, 200, "", "Charge"},
		{"charge key not UTF-8", "PATCH", "/customers/point", `{"userId":1,"chargeBalance":100}`,
			map[string]string{"Idempotency-Key": "chg-\xc3\x28"}, 400, "INVALID_REQUEST", ""},
		{"charge key too long", "PATCH", "/customers/point", `{"userId":1,"chargeBalance":100}`,
			map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}, 400, "INVALID_REQUEST", ""},
		{"user name NUL", "POST", "/users", `{"name":"a\u0000b"}`, nil, 400, "INVALID_REQUEST", ""},
		{"user name raw not UTF-8", "POST", "/users", "{\"name\":\"a\xffb\"}", nil, 400, "INVALID_REQUEST", ""},
		// encoding/json stored a lone surrogate escape as U+FFFD.
		{"user name lone high surrogate", "POST", "/users", `{"name":"a\ud800b"}`, nil, 400, "INVALID_REQUEST", ""},
		{"user name lone low surrogate", "POST", "/users", `{"name":"a\udc00"}`, nil, 400, "INVALID_REQUEST", ""},
		{"user name high surrogate at the end", "POST", "/users", `{"name":"a\uD800"}`, nil, 400, "INVALID_REQUEST", ""},
		{"user name surrogates reversed", "POST", "/users", `{"name":"\udc00\ud800"}`, nil, 400, "INVALID_REQUEST", ""},
		{"user name surrogate pair", "POST", "/users", `{"name":"\ud83c\udfb5 fan"}`, nil, 201, "", "CreateUser"},
		{"user name escaped backslash before u", "POST", "/users", `{"name":"a\\ud800"}`, nil, 201, "", "CreateUser"},
		{"admin title lone surrogate", "POST", "/admin/concerts", `{"title":"t\udfff","dates":["2030-01-01"],"price":10}`, admin, 400, "INVALID_REQUEST", ""},
		{"admin date lone surrogate", "POST", "/admin/concerts", `{"title":"t","dates":["2030-01-01\ud800"],"price":10}`, admin, 400, "INVALID_REQUEST", ""},
		{"user name 100 Korean characters", "POST", "/users", `{"name":"` + strings.Repeat("가", 100) + `"}`, nil, 201, "", "CreateUser"},
		{"user unknown field not UTF-8", "POST", "/users", "{\"name\":\"a\",\"x\":\"\xff\"}", nil, 400, "INVALID_REQUEST", ""},
		{"get token not UTF-8", "GET", "/users/token", ``, map[string]string{"Authorization": "Bearer \xff"}, 400, "INVALID_REQUEST", ""},
		{"admin title NUL", "POST", "/admin/concerts", `{"title":"t\u0000","dates":["2030-01-01"],"price":10}`, admin, 400, "INVALID_REQUEST", ""},
		{"admin key not UTF-8", "POST", "/admin/concerts", `{}`, map[string]string{"X-Admin-Key": "k\xff"}, 400, "INVALID_REQUEST", ""},
		{"admin key prefix", "POST", "/admin/concerts", `{}`, map[string]string{"X-Admin-Key": "kk"}, 401, "ADMIN_KEY_INVALID", ""},
		{"seats date NUL", "GET", "/concerts/1/available-seats?date=2024-10-10%00", ``, nil, 400, "INVALID_REQUEST", ""},
		{"points user not UTF-8", "GET", "/customers/point?userId=%FF", ``, nil, 400, "INVALID_REQUEST", ""},

		{"unknown route", "GET", "/nope", ``, nil, 404, "NOT_FOUND", ""},
		{"wrong method", "PUT", "/payments", `{}`, nil, 405, "METHOD_NOT_ALLOWED", ""},
		{"healthz", "GET", "/healthz", ``, nil, 200, "", ""},
		{"readyz", "GET", "/readyz", ``, nil, 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb := &fakeBooking{}
			res, e := do(t, Config{Booking: fb, AdminKey: "k"}, tt.method, tt.path, tt.body, tt.header)
			require.Equal(t, tt.status, res.StatusCode, "body %+v", e)
			require.Equal(t, tt.code, e.Code, e.Message)
			require.Equal(t, tt.call, fb.last)
		})
	}
}

func TestAdminOffWithoutKey(t *testing.T) {
	res, e := do(t, Config{Booking: &fakeBooking{}}, "POST", "/admin/concerts",
		`{"title":"t","dates":["2030-01-01"],"price":10}`, map[string]string{"X-Admin-Key": ""})
	require.Equal(t, 404, res.StatusCode)
	require.Equal(t, "NOT_FOUND", e.Code)
}

func TestBodies(t *testing.T) {
	app := New(Config{Booking: &fakeBooking{}, AdminKey: "k"})
	get := func(method, path, body string, header map[string]string) map[string]any {
		t.Helper()
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		for k, v := range header {
			req.Header.Set(k, v)
		}
		res, err := app.Test(req, -1)
		require.NoError(t, err)
		defer res.Body.Close()
		var out any
		require.NoError(t, json.NewDecoder(res.Body).Decode(&out))
		if list, ok := out.([]any); ok {
			return list[0].(map[string]any)
		}
		return out.(map[string]any)
	}
	tok := get("GET", "/users/token", "", map[string]string{"Authorization": "Bearer t"})
	require.Equal(t, "WAIT", tok["status"])
	require.EqualValues(t, 3, tok["position"])
	require.Contains(t, tok, "updateAt")
	require.Nil(t, tok["updateAt"])

	seats := get("GET", "/concerts/7/available-seats?date=2024-10-10", "", nil)
	require.Equal(t, "20241010", seats["date"])
	require.EqualValues(t, 7, seats["concertId"])
	require.Equal(t, []any{}, seats["seats"])

	u := get("POST", "/users", `{"name":" fan "}`, nil)
	require.Equal(t, "fan", u["name"])
	require.Equal(t, "1970-01-01T00:00:00.001Z", u["createdAt"])

	k := get("POST", "/admin/concerts", `{"title":"t","dates":["2030-01-02"],"price":1}`, map[string]string{"X-Admin-Key": "k"})
	require.EqualValues(t, 1, k["price"])
	d := k["dates"].([]any)[0].(map[string]any)
	require.Equal(t, "2030-01-02", d["concertDate"])
	require.EqualValues(t, 50, d["seats"])
}

// TestPayloadTooLarge needs a real server: Fiber's test hook reports the
// oversized body as its own error instead of answering.
func TestPayloadTooLarge(t *testing.T) {
	addr := serveFake(t, Config{Booking: &fakeBooking{}})
	status, raw := PostOversized(t, addr, "/users")
	require.Equal(t, stdhttp.StatusRequestEntityTooLarge, status)
	var e apiError
	require.NoError(t, json.Unmarshal(raw, &e))
	require.Equal(t, "PAYLOAD_TOO_LARGE", e.Code)
}

// PostOversized announces a body just over the limit and sends only its
// first bytes, then reads the answer: the server must refuse on the
// announced length. Writing the whole body races with the server closing the
// connection after its 413 (the client then sees a reset, not the answer).
// Exported for the end-to-end tests.
func PostOversized(t *testing.T, addr, path string) (int, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"name\":\"",
		path, addr, MaxBodyBytes+1)
	require.NoError(t, err)
	res, err := stdhttp.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, raw
}

// TestIdempotencyKeyReachesBooking: the Idempotency-Key of a charge and of
// a payment is handed to the service as sent (a repeated key is the
// wallet's to answer with the first result).
func TestIdempotencyKeyReachesBooking(t *testing.T) {
	key := strings.Repeat("가", 255)
	for _, tt := range []struct{ method, path, body string }{
		{"PATCH", "/customers/point", `{"userId":1,"chargeBalance":100}`},
		{"POST", "/payments", `{"reservationId":1,"amount":10}`},
	} {
		fb := &fakeBooking{}
		res, e := do(t, Config{Booking: fb}, tt.method, tt.path, tt.body,
			map[string]string{"Authorization": "Bearer t", "Idempotency-Key": key})
		require.Equal(t, 200, res.StatusCode, "%s %s: %+v", tt.method, tt.path, e)
		require.Equal(t, key, fb.key, "%s %s", tt.method, tt.path)
	}
}
