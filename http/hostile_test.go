package http_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/concert/ticketing/node"
)

// hostile is one request a hostile or broken client may send, and the
// answer it must get.
type hostile struct {
	name         string
	method, path string
	body         string
	h            hdr
	status       int
	code         string // "" when the status says it all
}

// TestHostileRequests sends a table of hostile requests to every route —
// malformed and huge bodies, wrong types, overflowing numbers, unknown ids,
// wrong methods, forged and other users' tokens, missing or wrong admin
// keys, replayed idempotency keys with another body — and checks each
// answer: the documented 4xx with its code (validated against the OpenAPI
// file), never a 5xx, and nothing changed for the victim.
func TestHostileRequests(t *testing.T) {
	e := startNode(t, node.Config{AdminKey: adminKey, HoldLimit: 10})
	alice, bob := e.user("alice"), e.user("bob")
	aliceTok, bobTok := e.token(alice), e.token(bob)
	concertID, opts := e.concert(100, 10, day(1))
	seats := e.freeSeats(concertID, day(1))
	e.charge(alice, 1000)
	e.ok(200, e.do("PATCH", "/customers/point", map[string]any{"userId": bob, "chargeBalance": 500}, hdr{"Idempotency-Key", "bob-1"}))
	res := num(t, e.ok(200, e.hold(aliceTok, alice, seats[0]))["id"])
	paidRes := num(t, e.ok(200, e.hold(bobTok, bob, seats[1]))["id"])
	e.ok(200, e.pay(bobTok, paidRes, 100, "Idempotency-Key", "bob-pay"))
	bobTok = e.token(bob)
	bobRes := num(t, e.ok(200, e.hold(bobTok, bob, seats[2]))["id"])

	A, B := bearer(aliceTok), bearer(bobTok)
	key := func(k string, h ...string) hdr { return append(hdr{"Idempotency-Key", k}, h...) }
	huge := `{"name":"` + strings.Repeat("a", 70<<10) + `"}`
	deep := strings.Repeat(`{"a":`, 10500) + "1" + strings.Repeat("}", 10500) // deeper than encoding/json goes, under 64 KiB
	long := strings.Repeat("k", 256)
	ovf := "9223372036854775808"
	resPath := fmt.Sprintf("/reservations/%d", res)
	cases := []hostile{
		// Bodies, every route that takes one.
		{"empty body", "POST", "/users", "", nil, 400, "INVALID_REQUEST"},
		{"array body", "POST", "/users", `[{"name":"x"}]`, nil, 400, "INVALID_REQUEST"},
		{"string body", "POST", "/users/token", `"1"`, nil, 400, "INVALID_REQUEST"},
		{"null body", "PATCH", "/customers/point", `null`, nil, 400, "INVALID_REQUEST"},
		{"truncated JSON", "POST", "/reservations", `{"userId":1,"seatId":`, A, 400, "INVALID_REQUEST"},
		{"trailing garbage", "POST", "/payments", fmt.Sprintf(`{"reservationId":%d,"amount":100} x`, res), A, 400, "INVALID_REQUEST"},
		{"huge body", "POST", "/users", huge, nil, 413, "PAYLOAD_TOO_LARGE"},
		{"deeply nested body", "POST", "/users", deep, nil, 400, "INVALID_REQUEST"},
		{"not UTF-8", "POST", "/users", "{\"name\":\"\xff\xfe\"}", nil, 400, "INVALID_REQUEST"},
		{"NUL in a name", "POST", "/users", `{"name":"a\u0000b"}`, nil, 400, "INVALID_REQUEST"},
		{"name too long", "POST", "/users", `{"name":"` + strings.Repeat("가", 101) + `"}`, nil, 400, "INVALID_REQUEST"},
		{"name of blanks", "POST", "/users", `{"name":"   "}`, nil, 400, "INVALID_REQUEST"},
		{"name a number", "POST", "/users", `{"name":12}`, nil, 400, "INVALID_REQUEST"},
		// Wrong types and overflowing numbers.
		{"userId a string", "POST", "/users/token", `{"userId":"1"}`, nil, 400, "INVALID_REQUEST"},
		{"userId a fraction", "POST", "/users/token", `{"userId":1.5}`, nil, 400, "INVALID_REQUEST"},
		{"userId an exponent", "POST", "/users/token", `{"userId":1e2}`, nil, 400, "INVALID_REQUEST"},
		{"userId beyond int64", "POST", "/users/token", `{"userId":` + ovf + `}`, nil, 400, "INVALID_REQUEST"},
		{"userId negative", "POST", "/users/token", `{"userId":-1}`, nil, 400, "INVALID_REQUEST"},
		{"userId zero", "POST", "/users/token", `{"userId":0}`, nil, 400, "INVALID_REQUEST"},
		{"userId true", "POST", "/users/token", `{"userId":true}`, nil, 400, "INVALID_REQUEST"},
		{"userId an object", "POST", "/users/token", `{"userId":{"$gt":0}}`, nil, 400, "INVALID_REQUEST"},
		{"seatId beyond int64", "POST", "/reservations", fmt.Sprintf(`{"userId":%d,"seatId":%s}`, alice, ovf), A, 400, "INVALID_REQUEST"},
		{"charge zero", "PATCH", "/customers/point", fmt.Sprintf(`{"userId":%d,"chargeBalance":0}`, alice), nil, 400, "INVALID_AMOUNT"},
		{"charge negative", "PATCH", "/customers/point", fmt.Sprintf(`{"userId":%d,"chargeBalance":-100}`, alice), nil, 400, "INVALID_AMOUNT"},
		{"charge over the limit", "PATCH", "/customers/point", fmt.Sprintf(`{"userId":%d,"chargeBalance":1000000001}`, alice), nil, 400, "INVALID_AMOUNT"},
		{"charge beyond int64", "PATCH", "/customers/point", fmt.Sprintf(`{"userId":%d,"chargeBalance":%s}`, alice, ovf), nil, 400, "INVALID_AMOUNT"},
		{"charge a string", "PATCH", "/customers/point", fmt.Sprintf(`{"userId":%d,"chargeBalance":"100"}`, alice), nil, 400, "INVALID_REQUEST"},
		{"payment of another amount", "POST", "/payments", fmt.Sprintf(`{"reservationId":%d,"amount":1}`, res), A, 400, "AMOUNT_MISMATCH"},
		{"payment beyond int64", "POST", "/payments", fmt.Sprintf(`{"reservationId":%d,"amount":%s}`, res, ovf), A, 400, "INVALID_AMOUNT"},
		// Unknown ids.
		{"unknown user's token", "POST", "/users/token", `{"userId":987654321}`, nil, 404, "USER_NOT_FOUND"},
		{"unknown user's balance", "GET", "/customers/point?userId=987654321", "", nil, 404, "USER_NOT_FOUND"},
		{"unknown user's charge", "PATCH", "/customers/point", `{"userId":987654321,"chargeBalance":5}`, nil, 404, "USER_NOT_FOUND"},
		{"unknown seat", "POST", "/reservations", fmt.Sprintf(`{"userId":%d,"seatId":987654321}`, alice), A, 404, "SEAT_NOT_FOUND"},
		{"unknown reservation of a date", "GET", fmt.Sprintf("/reservations/%d", opts[0]<<32|999), "", A, 404, "RESERVATION_NOT_FOUND"},
		{"reservation of no date", "GET", fmt.Sprintf("/reservations/%d", int64(999)<<32|1), "", A, 404, "RESERVATION_NOT_FOUND"},
		{"cancel of no date", "DELETE", fmt.Sprintf("/reservations/%d", int64(999)<<32|1), "", A, 404, "RESERVATION_NOT_FOUND"},
		{"payment of no date", "POST", "/payments", fmt.Sprintf(`{"reservationId":%d,"amount":100}`, int64(999)<<32|1), A, 404, "RESERVATION_NOT_FOUND"},
		{"unknown concert", "GET", "/concerts/987654321/available-date", "", nil, 404, "CONCERT_NOT_FOUND"},
		{"date not of the concert", "GET", fmt.Sprintf("/concerts/%d/available-seats?date=2031-02-03", concertID), "", nil, 404, "DATE_NOT_FOUND"},
		// Malformed path and query values.
		{"id not a number", "GET", "/reservations/abc", "", A, 400, "INVALID_REQUEST"},
		{"id zero", "GET", "/reservations/0", "", A, 400, "INVALID_REQUEST"},
		{"id with a sign", "DELETE", "/reservations/+1", "", A, 400, "INVALID_REQUEST"},
		{"id beyond int64", "GET", "/reservations/" + ovf, "", A, 400, "INVALID_REQUEST"},
		{"id too long", "GET", "/reservations/" + strings.Repeat("1", 70), "", A, 400, "INVALID_REQUEST"},
		{"query injection", "GET", "/customers/point?userId=1%3BDROP%20TABLE%20users", "", nil, 400, "INVALID_REQUEST"},
		{"query missing", "GET", "/customers/point", "", nil, 400, "INVALID_REQUEST"},
		{"impossible date", "GET", fmt.Sprintf("/concerts/%d/available-seats?date=2031-13-45", concertID), "", nil, 400, "INVALID_REQUEST"},
		{"concert id not a number", "GET", "/concerts/x/available-date", "", nil, 400, "INVALID_REQUEST"},
		// Wrong methods and unknown routes.
		{"PUT /users", "PUT", "/users", `{"name":"x"}`, nil, 405, "METHOD_NOT_ALLOWED"},
		{"DELETE /users/token", "DELETE", "/users/token", "", A, 405, "METHOD_NOT_ALLOWED"},
		{"GET /payments", "GET", "/payments", "", A, 405, "METHOD_NOT_ALLOWED"},
		{"POST /concerts", "POST", "/concerts", `{}`, nil, 405, "METHOD_NOT_ALLOWED"},
		{"PATCH a reservation", "PATCH", resPath, `{"status":"CONFIRMED"}`, A, 405, "METHOD_NOT_ALLOWED"},
		{"POST /healthz", "POST", "/healthz", "", nil, 405, "METHOD_NOT_ALLOWED"},
		{"unknown route", "GET", "/admin/users", "", nil, 404, "NOT_FOUND"},
		{"path traversal", "GET", "/concerts/../../etc/passwd", "", nil, 404, "NOT_FOUND"},
		// Tokens: missing, forged, another user's, expired, wrong scheme.
		{"no token", "POST", "/reservations", fmt.Sprintf(`{"userId":%d,"seatId":%d}`, alice, seats[3]), nil, 401, "TOKEN_INVALID"},
		{"forged token", "POST", "/reservations", fmt.Sprintf(`{"userId":%d,"seatId":%d}`, alice, seats[3]), bearer("AAAAAAAAAAAAAAAAAAAAAA"), 401, "TOKEN_INVALID"},
		{"token under another scheme", "GET", "/users/token", "", hdr{"Authorization", "Basic " + aliceTok}, 401, "TOKEN_INVALID"},
		{"token too long", "GET", "/users/token", "", bearer(strings.Repeat("t", 300)), 400, "INVALID_REQUEST"},
		{"token not UTF-8", "GET", "/users/token", "", bearer("\xff\xfe"), 400, "INVALID_REQUEST"},
		{"another user's token for a hold", "POST", "/reservations", fmt.Sprintf(`{"userId":%d,"seatId":%d}`, alice, seats[3]), B, 403, "TOKEN_USER_MISMATCH"},
		{"another user's token to read", "GET", resPath, "", B, 403, "TOKEN_USER_MISMATCH"},
		{"another user's token to cancel", "DELETE", resPath, "", B, 403, "TOKEN_USER_MISMATCH"},
		{"another user's token to pay", "POST", "/payments", fmt.Sprintf(`{"reservationId":%d,"amount":100}`, res), B, 403, "TOKEN_USER_MISMATCH"},
		{"a paid, expired token to hold", "POST", "/reservations", fmt.Sprintf(`{"userId":%d,"seatId":%d}`, bob, seats[4]), bearer(""), 401, "TOKEN_INVALID"},
		// Admin.
		{"admin without key", "POST", "/admin/concerts", `{"title":"x","dates":["2031-01-01"],"price":10}`, nil, 401, "ADMIN_KEY_INVALID"},
		{"admin with a wrong key", "POST", "/admin/concerts", `{"title":"x","dates":["2031-01-01"],"price":10}`, hdr{"X-Admin-Key", adminKey + "x"}, 401, "ADMIN_KEY_INVALID"},
		{"admin with a prefix of the key", "POST", "/admin/concerts", `{"title":"x","dates":["2031-01-01"],"price":10}`, hdr{"X-Admin-Key", adminKey[:4]}, 401, "ADMIN_KEY_INVALID"},
		{"admin key not UTF-8", "POST", "/admin/concerts", `{"title":"x","dates":["2031-01-01"],"price":10}`, hdr{"X-Admin-Key", "\xff"}, 400, "INVALID_REQUEST"},
		{"free concert", "POST", "/admin/concerts", `{"title":"x","dates":["2031-01-01"],"price":0}`, hdr{"X-Admin-Key", adminKey}, 400, "INVALID_REQUEST"},
		{"too many seats", "POST", "/admin/concerts", `{"title":"x","dates":["2031-01-01"],"price":10,"seatsPerDate":1001}`, hdr{"X-Admin-Key", adminKey}, 400, "INVALID_REQUEST"},
		{"too many dates", "POST", "/admin/concerts", `{"title":"x","dates":[` + strings.Repeat(`"2031-01-01",`, 366) + `"2031-01-02"],"price":10}`, hdr{"X-Admin-Key", adminKey}, 400, "INVALID_REQUEST"},
		{"a date twice", "POST", "/admin/concerts", `{"title":"x","dates":["2031-01-01","2031-01-01"],"price":10}`, hdr{"X-Admin-Key", adminKey}, 400, "INVALID_REQUEST"},
		// Idempotency keys replayed with another body, or malformed.
		{"charge key replayed with another amount", "PATCH", "/customers/point", fmt.Sprintf(`{"userId":%d,"chargeBalance":501}`, bob), key("bob-1"), 409, "IDEMPOTENCY_KEY_REUSED"},
		{"payment key replayed for another reservation", "POST", "/payments", fmt.Sprintf(`{"reservationId":%d,"amount":100}`, bobRes), key("bob-pay", B...), 409, "IDEMPOTENCY_KEY_REUSED"},
		{"key too long", "PATCH", "/customers/point", fmt.Sprintf(`{"userId":%d,"chargeBalance":5}`, alice), key(long), 400, "INVALID_REQUEST"},
		{"key not UTF-8", "POST", "/payments", fmt.Sprintf(`{"reservationId":%d,"amount":100}`, res), key("k\xff", A...), 400, "INVALID_REQUEST"},
		{"another user's payment key", "POST", "/payments", fmt.Sprintf(`{"reservationId":%d,"amount":100}`, paidRes), key("bob-pay", A...), 403, "TOKEN_USER_MISMATCH"},
		// State: the victim's reservation cannot be cancelled twice over or paid twice.
		{"pay a paid reservation", "POST", "/payments", fmt.Sprintf(`{"reservationId":%d,"amount":100}`, paidRes), B, 409, "ALREADY_PAID"},
		{"hold a held seat", "POST", "/reservations", fmt.Sprintf(`{"userId":%d,"seatId":%d}`, bob, seats[0]), B, 409, "SEAT_UNAVAILABLE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := rawDo(t, e.base, c.method, c.path, c.body, c.h...)
			require.Less(t, r.status, 500, "%s %s: %s", c.method, c.path, r.body)
			require.Equal(t, c.status, r.status, "%s %s: %s", c.method, c.path, r.body)
			var body struct{ Code, Message string }
			require.NoError(t, json.Unmarshal(r.body, &body), "%s", r.body)
			require.Equal(t, c.code, body.Code, "%s", r.body)
			require.NotEmpty(t, body.Message)
			if utf8.ValidString(c.body) && len(c.body) > 100 {
				require.NotContains(t, body.Message, c.body[:100], "the body is not echoed")
			}
		})
	}
	t.Logf("%d hostile requests, each answered as documented", len(cases))

	// Nothing changed for the victims.
	require.Equal(t, int64(1000), e.balance(alice))
	require.Equal(t, int64(400), e.balance(bob))
	r := e.ok(200, e.do("GET", resPath, nil, A))
	require.Equal(t, "HELD", r["status"])
}

// FuzzBearerToken sends any Authorization header to the token route of a
// node on a real PostgreSQL: the answer is never a 5xx; text that is not
// UTF-8 or holds NUL is 400; only the real token itself, with the Bearer
// scheme, is 200 — anything else is 401 TOKEN_INVALID. The seed corpus is
// in testdata/fuzz/FuzzBearerToken.
func FuzzBearerToken(f *testing.F) {
	e := startNodeTB(f, node.Config{AdminKey: adminKey})
	e.t = &testing.T{}
	r := rawDo(f, e.base, "POST", "/users", `{"name":"fan"}`)
	var u struct{ ID int64 }
	require.NoError(f, json.Unmarshal(r.body, &u))
	r = rawDo(f, e.base, "POST", "/users/token", fmt.Sprintf(`{"userId":%d}`, u.ID))
	var tok struct{ Token string }
	require.NoError(f, json.Unmarshal(r.body, &tok))
	for _, s := range []string{"Bearer " + tok.Token, "bearer   " + tok.Token + "  ", "Bearer " + tok.Token + "x",
		"Bearer " + tok.Token[1:], "Basic " + tok.Token, "Bearer", "Bearer \xff", "Bearer a\x00", "", "Bearer " + strings.Repeat("가", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		v = strings.NewReplacer("\r", "", "\n", "").Replace(v)
		if len(v) > 3000 {
			v = v[:3000]
		}
		r := rawDo(t, e.base, "GET", "/users/token", "", "Authorization", v)
		require.Less(t, r.status, 500, "%q: %s", v, r.body)
		switch {
		case !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0:
			require.Equal(t, 400, r.status, "%q: %s", v, r.body)
		case r.status == 200:
			scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
			require.True(t, strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(rest) == tok.Token,
				"%q was accepted as the token", v)
		default:
			require.Contains(t, []int{400, 401}, r.status, "%q: %s", v, r.body)
		}
	})
}

// FuzzIdempotencyKeyReplay charges with any Idempotency-Key on a node on a
// real PostgreSQL: a key the API refuses (not UTF-8, NUL, over 255
// characters) changes nothing; an accepted one adds once however often it
// is replayed, answers the first balance, and refuses another amount. The
// seed corpus is in testdata/fuzz/FuzzIdempotencyKeyReplay.
func FuzzIdempotencyKeyReplay(f *testing.F) {
	// A fuzzing machine is busy: a 503 for load would be saved as a crash.
	e := startNodeTB(f, node.Config{AdminKey: adminKey, RequestTimeout: 10 * time.Second})
	for _, k := range []string{"k-1", "가나다", "\xff", "a\x00b", strings.Repeat("가", 255), strings.Repeat("가", 256), " padded ", "\t"} {
		f.Add(k, uint16(100))
	}
	f.Fuzz(func(t *testing.T, k string, amount uint16) {
		k = strings.NewReplacer("\r", "", "\n", "").Replace(k)
		if len(k) > 3000 {
			k = k[:3000]
		}
		a := int64(amount) + 1
		r := rawDo(t, e.base, "POST", "/users", `{"name":"fan"}`)
		var u struct{ ID int64 }
		require.NoError(t, json.Unmarshal(r.body, &u))
		charge := func(a int64) rawReply {
			return rawDo(t, e.base, "PATCH", "/customers/point", fmt.Sprintf(`{"userId":%d,"chargeBalance":%d}`, u.ID, a), "Idempotency-Key", k)
		}
		balance := func() int64 {
			r := rawDo(t, e.base, "GET", fmt.Sprintf("/customers/point?userId=%d", u.ID), "")
			var p struct{ Balance int64 }
			require.NoError(t, json.Unmarshal(r.body, &p))
			return p.Balance
		}
		first := charge(a)
		require.Less(t, first.status, 500, "%q: %s", k, first.body)
		trimmed := strings.Trim(k, " \t")
		if !utf8.ValidString(k) || strings.IndexByte(k, 0) >= 0 || utf8.RuneCountInString(trimmed) > 255 {
			require.Equal(t, 400, first.status, "%q: %s", k, first.body)
			require.Equal(t, int64(0), balance(), "a refused key changes nothing")
			return
		}
		require.Equal(t, 200, first.status, "%q: %s", k, first.body)
		again := charge(a)
		require.Equal(t, 200, again.status, "%s", again.body)
		switch balance() {
		case a: // keyed: added once
			require.JSONEq(t, string(first.body), string(again.body), "a replay answers the first charge")
			other := charge(a + 1)
			require.Equal(t, 409, other.status, "%q with another amount: %s", k, other.body)
		case 2 * a: // no key: HTTP drops a value of blanks only
			require.Empty(t, strings.TrimSpace(trimmed), "key %q was not honoured", k)
		default:
			t.Fatalf("key %q: balance %d after two charges of %d", k, balance(), a)
		}
	})
}
