package booking

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/actors"
	"github.com/concert/ticketing/messages"
)

// freshTokens knows one token, ACTIVE: the user's new token, issued after
// the payment being retried expired the old one.
type freshTokens struct{}

func (freshTokens) Lookup(context.Context, string, time.Time) (actors.TokenCheck, error) {
	return actors.TokenCheck{TokenID: 2, UserID: 7, Status: messages.TokenStatus_TOKEN_ACTIVE}, nil
}
func (freshTokens) Waiting() int { return 0 }
func (freshTokens) Active() int  { return 0 }

// paidRouter is a node where the payment under the key is done: the wallet
// recorded it and the seat confirmed it. It records token expiries.
type paidRouter struct{ expired []string }

func (r *paidRouter) Request(_ context.Context, kind, _ string, msg proto.Message) (proto.Message, error) {
	rid := actors.ReservationID(3, 1)
	switch m := msg.(type) {
	case *messages.LookupPayment:
		return &messages.WalletResult{Payment: &messages.Payment{ReservationId: rid, Amount: 1000, BalanceAfter: 4000, IdempotencyKey: "pay-1"}}, nil
	case *messages.PayReservation:
		return &messages.ReservationResult{Reservation: &messages.Reservation{
			Id: rid, UserId: 7, Status: messages.ReservationStatus_RESERVATION_CONFIRMED,
			PaidAmount: 1000, BalanceAfter: 4000, IdempotencyKey: "pay-1",
		}}, nil
	case *messages.ExpireToken:
		r.expired = append(r.expired, m.GetToken())
		return &messages.TokenResult{}, nil
	}
	return nil, messages.Reject(messages.CodeInvalidRequest, "unexpected %T to %s", msg, kind)
}

func (r *paidRouter) Send(string, string, proto.Message) {}

// TestKeyedRetryKeepsTheNewToken: a payment retried with its key returns
// the first answer and changes nothing. Retried with the user's new ACTIVE
// token (the first payment expired the old one), it must not expire that
// token: the user would lose its place and its holds' token.
func TestKeyedRetryKeepsTheNewToken(t *testing.T) {
	r := &paidRouter{}
	s := New(Config{Catalog: knownOptions{}, Router: r, Tokens: freshTokens{}})
	rc, err := s.Pay(context.Background(), "new-token", actors.ReservationID(3, 1), 1000, "pay-1")
	if err != nil {
		t.Fatalf("keyed retry: %v", err)
	}
	if rc.Amount != 1000 {
		t.Fatalf("receipt %+v", rc)
	}
	if len(r.expired) != 0 {
		t.Fatalf("a keyed retry of a done payment expired the token %v", r.expired)
	}
}
