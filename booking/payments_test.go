package booking

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/actors"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// paidTokens knows one token, expired because its user paid.
type paidTokens struct{}

func (paidTokens) Lookup(context.Context, string, time.Time) (actors.TokenCheck, error) {
	return actors.TokenCheck{TokenID: 1, UserID: 7, Status: messages.TokenStatus_TOKEN_EXPIRED, PaidExpired: true}, nil
}
func (paidTokens) Waiting() int { return 0 }
func (paidTokens) Active() int  { return 0 }

// knownOptions is a Catalog whose every option exists.
type knownOptions struct{ Catalog }

func (knownOptions) Option(_ context.Context, id int64) (persistence.ConcertOption, error) {
	return persistence.ConcertOption{ID: id}, nil
}

// midSagaRouter is a node in the middle of a payment saga: the wallet has
// recorded the debit under the key, the seat has not confirmed yet.
type midSagaRouter struct{ seatAsked bool }

func (r *midSagaRouter) Request(_ context.Context, kind, _ string, msg proto.Message) (proto.Message, error) {
	switch msg.(type) {
	case *messages.LookupPayment:
		return &messages.WalletResult{Payment: &messages.Payment{ReservationId: actors.ReservationID(3, 1), Amount: 1000, BalanceAfter: 4000}}, nil
	case *messages.PayReservation:
		r.seatAsked = true
		return nil, messages.Reject(messages.CodeStoreUnavailable, "payment pending")
	}
	return nil, messages.Reject(messages.CodeInvalidRequest, "unexpected %T to %s", msg, kind)
}

func (r *midSagaRouter) Send(string, string, proto.Message) {}

// TestKeyedRetryWaitsForTheSaga: a payment retried with its key while the
// wallet has recorded the debit but the seat has not yet confirmed is not
// answered 200 from the wallet's record (a read of the reservation would
// then still say HELD: found by the cluster chaos run, seed 5); it is
// answered by the seat actor, here "pending".
func TestKeyedRetryWaitsForTheSaga(t *testing.T) {
	r := &midSagaRouter{}
	s := New(Config{Catalog: knownOptions{}, Router: r, Tokens: paidTokens{}})
	_, err := s.Pay(context.Background(), "tok", actors.ReservationID(3, 1), 1000, "pay-1")
	if !r.seatAsked {
		t.Fatal("the retry was answered from the wallet's record without asking the seat")
	}
	var rej *messages.Rejection
	if !errors.As(err, &rej) || rej.GetCode() != messages.CodeStoreUnavailable {
		t.Fatalf("retry mid-saga: %v, want the seat's STORE_UNAVAILABLE", err)
	}
}
