package http

import (
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
