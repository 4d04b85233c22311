package http

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/concert/ticketing/messages"
)

// The hand-written encodings must be exactly what encoding/json writes.
func TestEncodeJSONMatchesEncodingJSON(t *testing.T) {
	str := func(s string) *string { return &s }
	values := []any{
		reservationView{},
		reservationView{ID: 1<<32 | 7, UserID: 9, SeatID: -3, ConcertID: 1, ConcertOptionID: 1, Price: 50000,
			Status: "HELD", ExpiresAt: str("2026-01-02T03:04:05.678Z"), CreatedAt: str("2026-01-02T03:00:05.678Z")},
		reservationView{Status: `we"ird<&>\` + "\u2028\x01é", ExpiresAt: str("a\"b"), CreatedAt: str(""), UpdateAt: str("<x>")},
		viewReservation(&messages.Reservation{Id: 5, Status: messages.ReservationStatus_RESERVATION_CANCELLED,
			ExpiresAtMs: 1_700_000_000_123, CreatedAtMs: 1_700_000_000_000, UpdateAtMs: 1_700_000_000_001}),
		apiError{},
		apiError{Code: messages.CodeSeatUnavailable, Message: "seat 4 is held by another reservation"},
		apiError{Code: messages.CodeInvalidRequest, Message: `malformed JSON: invalid character '<' looking for "x" & more` + "\t\u2029\xff"},
		tokenView{ID: 1, Token: "t"},
		map[string]any{"a": 1},
	}
	for _, v := range values {
		want, err := json.Marshal(v)
		require.NoError(t, err)
		got, err := encodeJSON(v)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(got), "%#v", v)
	}
}

// flatNumbers accepts only what encoding/json accepts, with the same result.
func FuzzFlatNumbersMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, `{ }`, `{"userId":1,"seatId":2}`, ` {"userId" : -0 , "seatId":	12.5e+3 }`, `{"a":1,"a":2}`,
		`{"a":01}`, `{"a":1,}`, `{"a":1}x`, `{"a":-}`, `{"a":1.}`, `{"a":1e}`, `{"a":"x"}`, `{"a":null}`,
		`{"a-b":1}`, `{"":1}`, `{"a":1 "b":2}`, `{"é":1}`, `{"a":1`, `{`, `{"a":1}}`, `{"a":1E-7}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) == 0 || body[0] != '{' {
			return
		}
		got, ok := flatNumbers(body)
		if !ok {
			return
		}
		var want fields
		require.NoError(t, json.Unmarshal(body, &want), "%q", body)
		require.Equal(t, len(want), len(got), "%q", body)
		for k, v := range want {
			assert.Equal(t, string(v), string(got[k]), "%q field %q", body, k)
		}
	})
}
