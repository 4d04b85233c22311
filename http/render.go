package http

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/concert/ticketing/messages"
)

// timeLayout is RFC 3339 in UTC with milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z"

// stamp formats t in UTC with milliseconds.
func stamp(t time.Time) string { return t.UTC().Format(timeLayout) }

// msStamp formats a Unix time in milliseconds; 0 (never) is null.
func msStamp(ms int64) *string {
	if ms == 0 {
		return nil
	}
	s := stamp(time.UnixMilli(ms))
	return &s
}

// The contract's status strings of the proto enums.
var (
	tokenStatus = map[messages.TokenStatus]string{
		messages.TokenStatus_TOKEN_WAIT:    "WAIT",
		messages.TokenStatus_TOKEN_ACTIVE:  "ACTIVE",
		messages.TokenStatus_TOKEN_EXPIRED: "EXPIRED",
	}
	reservationStatus = map[messages.ReservationStatus]string{
		messages.ReservationStatus_RESERVATION_HELD:      "HELD",
		messages.ReservationStatus_RESERVATION_CONFIRMED: "CONFIRMED",
		messages.ReservationStatus_RESERVATION_EXPIRED:   "EXPIRED",
		messages.ReservationStatus_RESERVATION_CANCELLED: "CANCELLED",
	}
)

// tokenView is the token object of the contract.
type tokenView struct {
	ID        int64   `json:"id"`
	UserID    int64   `json:"userId"`
	Token     string  `json:"token"`
	Status    string  `json:"status"`
	Position  int64   `json:"position"`
	CreatedAt *string `json:"createdAt"`
	UpdateAt  *string `json:"updateAt"`
	ExpiresAt *string `json:"expiresAt"`
}

func viewToken(t *messages.Token) tokenView {
	pos := t.GetPosition()
	if t.GetStatus() != messages.TokenStatus_TOKEN_WAIT {
		pos = 0
	}
	v := tokenView{
		ID: t.GetId(), UserID: t.GetUserId(), Token: t.GetToken(), Status: tokenStatus[t.GetStatus()], Position: pos,
		CreatedAt: msStamp(t.GetCreatedAtMs()), ExpiresAt: msStamp(t.GetExpiresAtMs()),
	}
	// An expired token was updated even if it expired the moment it was made.
	if t.GetUpdateAtMs() > t.GetCreatedAtMs() || t.GetStatus() == messages.TokenStatus_TOKEN_EXPIRED {
		v.UpdateAt = msStamp(t.GetUpdateAtMs())
	}
	return v
}

// reservationView is the reservation object of the contract.
type reservationView struct {
	ID              int64   `json:"id"`
	UserID          int64   `json:"userId"`
	SeatID          int64   `json:"seatId"`
	ConcertID       int64   `json:"concertId"`
	ConcertOptionID int64   `json:"concertOptionId"`
	Price           int64   `json:"price"`
	Status          string  `json:"status"`
	ExpiresAt       *string `json:"expiresAt"`
	CreatedAt       *string `json:"createdAt"`
	UpdateAt        *string `json:"updateAt"`
}

func viewReservation(r *messages.Reservation) reservationView {
	v := reservationView{
		ID: r.GetId(), UserID: r.GetUserId(), SeatID: r.GetSeatId(), ConcertID: r.GetConcertId(),
		ConcertOptionID: r.GetConcertOptionId(), Price: r.GetPrice(), Status: reservationStatus[r.GetStatus()],
		ExpiresAt: msStamp(r.GetExpiresAtMs()), CreatedAt: msStamp(r.GetCreatedAtMs()),
	}
	// Only a HELD reservation can be unchanged since its creation.
	if r.GetUpdateAtMs() > r.GetCreatedAtMs() || r.GetStatus() != messages.ReservationStatus_RESERVATION_HELD {
		v.UpdateAt = msStamp(r.GetUpdateAtMs())
	}
	return v
}

// encodeJSON is the app's JSON encoder: the reservation view of the hold
// path is written by hand (byte for byte what encoding/json writes, see
// TestEncodeJSONMatchesEncodingJSON); everything else goes to
// encoding/json.
func encodeJSON(v any) ([]byte, error) {
	switch v := v.(type) {
	case reservationView:
		return v.appendJSON(make([]byte, 0, 320)), nil
	case apiError:
		if jsonSafe(v.Code) && jsonSafe(v.Message) {
			b := make([]byte, 0, 32+len(v.Code)+len(v.Message))
			b = append(b, `{"code":"`...)
			b = append(b, v.Code...)
			b = append(b, `","message":"`...)
			b = append(b, v.Message...)
			return append(b, `"}`...), nil
		}
	}
	return json.Marshal(v)
}

// appendJSON appends v as encoding/json would encode it. Status and the
// stamps are plain ASCII without characters that need escaping.
func (v reservationView) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, v.ID, 10)
	b = append(b, `,"userId":`...)
	b = strconv.AppendInt(b, v.UserID, 10)
	b = append(b, `,"seatId":`...)
	b = strconv.AppendInt(b, v.SeatID, 10)
	b = append(b, `,"concertId":`...)
	b = strconv.AppendInt(b, v.ConcertID, 10)
	b = append(b, `,"concertOptionId":`...)
	b = strconv.AppendInt(b, v.ConcertOptionID, 10)
	b = append(b, `,"price":`...)
	b = strconv.AppendInt(b, v.Price, 10)
	b = append(b, `,"status":`...)
	b = appendSafeString(b, v.Status)
	b = append(b, `,"expiresAt":`...)
	b = appendOptString(b, v.ExpiresAt)
	b = append(b, `,"createdAt":`...)
	b = appendOptString(b, v.CreatedAt)
	b = append(b, `,"updateAt":`...)
	b = appendOptString(b, v.UpdateAt)
	return append(b, '}')
}

func appendOptString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendSafeString(b, *s)
}

// appendSafeString quotes s, which must satisfy jsonSafe (or be escaped by
// encoding/json, as a fallback that cannot happen for our own strings).
func appendSafeString(b []byte, s string) []byte {
	if !jsonSafe(s) {
		q, _ := json.Marshal(s)
		return append(b, q...)
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// jsonSafe reports whether s is printable ASCII that encoding/json writes
// as is: no quote, backslash or HTML character (<, >, &), which it escapes.
func jsonSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
