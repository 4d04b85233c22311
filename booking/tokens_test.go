package booking

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/concert/ticketing/actors"
	"github.com/concert/ticketing/messages"
)

// lookupTokens answers every token lookup with err.
type lookupTokens struct{ err error }

func (l lookupTokens) Lookup(context.Context, string, time.Time) (actors.TokenCheck, error) {
	return actors.TokenCheck{}, l.err
}
func (lookupTokens) Waiting() int { return 0 }
func (lookupTokens) Active() int  { return 0 }

// TestTokenLookupFailureIsNotInvalid: a token nobody knows is
// TOKEN_INVALID (401: start over), but a token that could not be checked in
// time (the queue manager on another node did not answer) is
// STORE_UNAVAILABLE (503: retry), on every call that checks a token.
func TestTokenLookupFailureIsNotInvalid(t *testing.T) {
	calls := map[string]func(s *Service) error{
		"hold": func(s *Service) error {
			_, err := s.Hold(context.Background(), "tok", 7, 1)
			return err
		},
		"read": func(s *Service) error {
			_, err := s.Reservation(context.Background(), "tok", actors.ReservationID(3, 1))
			return err
		},
		"cancel": func(s *Service) error {
			_, err := s.Cancel(context.Background(), "tok", actors.ReservationID(3, 1))
			return err
		},
		"pay": func(s *Service) error {
			_, err := s.Pay(context.Background(), "tok", actors.ReservationID(3, 1), 1000, "")
			return err
		},
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{actors.ErrUnknownToken, messages.CodeTokenInvalid},
		{fmt.Errorf("token lookup: %w", context.DeadlineExceeded), messages.CodeStoreUnavailable},
	} {
		for name, call := range calls {
			s := New(Config{Catalog: knownOptions{}, Router: &midSagaRouter{}, Tokens: lookupTokens{c.err}})
			var rej *messages.Rejection
			if err := call(s); !errors.As(err, &rej) || rej.GetCode() != c.want {
				t.Errorf("%s with the lookup failing with %v: %v, want %s", name, c.err, err, c.want)
			}
		}
	}
}
