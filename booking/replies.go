package booking

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/messages"
)

// The helpers below turn an actor's (reply, error) into a value. Actors may
// answer a *…Result carrying a rejection or the bare value; both are
// accepted so the service does not depend on that choice.

func reservationOf(reply proto.Message, err error) (*messages.Reservation, error) {
	if err != nil {
		return nil, err
	}
	switch r := reply.(type) {
	case *messages.ReservationResult:
		if rej := r.GetRejection(); rej != nil {
			return nil, rej
		}
		if r.GetReservation() != nil {
			return r.GetReservation(), nil
		}
	case *messages.Reservation:
		return r, nil
	}
	return nil, unexpected(reply)
}

func walletOf(reply proto.Message, err error) (*messages.WalletResult, error) {
	if err != nil {
		return nil, err
	}
	r, ok := reply.(*messages.WalletResult)
	if !ok {
		return nil, unexpected(reply)
	}
	if rej := r.GetRejection(); rej != nil {
		return nil, rej
	}
	return r, nil
}

func tokenOf(reply proto.Message, err error) (*messages.Token, error) {
	if err != nil {
		return nil, err
	}
	switch r := reply.(type) {
	case *messages.TokenResult:
		if rej := r.GetRejection(); rej != nil {
			return nil, rej
		}
		if r.GetToken() != nil {
			return r.GetToken(), nil
		}
	case *messages.Token:
		return r, nil
	}
	return nil, unexpected(reply)
}

func availabilityOf(reply proto.Message, err error) (*messages.SeatAvailability, error) {
	if err != nil {
		return nil, err
	}
	r, ok := reply.(*messages.SeatAvailability)
	if !ok {
		return nil, unexpected(reply)
	}
	return r, nil
}

func unexpected(reply proto.Message) error {
	return fmt.Errorf("unexpected actor reply %T", reply)
}
