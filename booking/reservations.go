package booking

import (
	"context"
	"errors"

	"github.com/concert/ticketing/actors"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// Hold holds a seat for the token's user. The date's seat actor grants the
// hold (seat contention, per-date limit) and, in the same commit round,
// takes one of the user's hold slots at the wallet (the limit across
// dates); a refused slot cancels the hold before the refusal is answered.
func (s *Service) Hold(ctx context.Context, token string, userID, seatID int64) (*messages.Reservation, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if _, err := s.authorizeUser(ctx, token, activeOnly, userID); err != nil {
		return nil, err
	}
	seat, err := s.seat(ctx, seatID)
	if err != nil {
		return nil, err
	}
	return reservationOf(s.router.Request(ctx, kindSeat, id(seat.OptionID),
		&messages.HoldSeat{UserId: userID, SeatId: seatID}))
}

// Reservation returns a reservation of the token's user. The token of a
// user who just paid is accepted too, so the confirmed reservation can be
// read.
func (s *Service) Reservation(ctx context.Context, token string, reservationID int64) (*messages.Reservation, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	chk, err := s.authorize(ctx, token, orPaid)
	if err != nil {
		return nil, err
	}
	optionID, err := s.optionOf(ctx, reservationID)
	if err != nil {
		return nil, err
	}
	r, err := reservationOf(s.router.Request(ctx, kindSeat, id(optionID),
		&messages.GetReservation{ReservationId: reservationID}))
	if err != nil {
		return nil, err
	}
	if r.GetUserId() != chk.UserID {
		return nil, mismatch()
	}
	return r, nil
}

// Cancel cancels a hold of the token's user; the seat is free again.
func (s *Service) Cancel(ctx context.Context, token string, reservationID int64) (*messages.Reservation, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	chk, err := s.authorize(ctx, token, activeOnly)
	if err != nil {
		return nil, err
	}
	optionID, err := s.optionOf(ctx, reservationID)
	if err != nil {
		return nil, err
	}
	// The seat actor checks that the reservation is the user's.
	return reservationOf(s.router.Request(ctx, kindSeat, id(optionID),
		&messages.CancelReservation{ReservationId: reservationID, UserId: chk.UserID}))
}

// optionOf finds the concert option a reservation id routes to, checking
// that the option exists so that no seat actor is started for a made-up id.
func (s *Service) optionOf(ctx context.Context, reservationID int64) (int64, error) {
	if reservationID <= 0 {
		return 0, messages.Reject(messages.CodeInvalidRequest, "reservation id must be positive")
	}
	optionID := actors.OptionOfReservation(reservationID)
	if _, ok := s.options.get(optionID); ok {
		return optionID, nil
	}
	o, err := s.catalog.Option(ctx, optionID)
	if err != nil {
		if errors.Is(err, persistence.ErrNotFound) {
			return 0, messages.Reject(messages.CodeReservationNotFound, "reservation %d not found", reservationID)
		}
		return 0, err
	}
	s.options.put(optionID, o)
	return optionID, nil
}
