package booking

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/concert/ticketing/actors"
	"github.com/concert/ticketing/messages"
)

// Tokens answers token checks, from memory when it can (the queue
// manager's token table, or a node's copy of it). Lookup returns
// actors.ErrUnknownToken for a token nobody issued or that is forgotten,
// and any other error when it could not tell within ctx (a node asking the
// queue manager elsewhere in the cluster): that is answered 503, since the
// token may well be valid. Safe for concurrent use.
type Tokens interface {
	Lookup(ctx context.Context, token string, now time.Time) (actors.TokenCheck, error)
	// Waiting is the number of tokens in line.
	Waiting() int
	// Active is the number of active tokens.
	Active() int
}

// access says which tokens an API call accepts.
type access int

const (
	// activeOnly accepts only ACTIVE tokens.
	activeOnly access = iota
	// orPaid also accepts the EXPIRED token of a user who just paid, so the
	// client can read its confirmed reservation and retry its payment.
	orPaid
)

// authorize checks a bearer token and returns what the table knows of it.
func (s *Service) authorize(ctx context.Context, token string, mode access) (actors.TokenCheck, error) {
	if token == "" {
		return actors.TokenCheck{}, messages.Reject(messages.CodeTokenInvalid, "missing bearer token")
	}
	chk, err := s.tokens.Lookup(ctx, token, s.now())
	switch {
	case errors.Is(err, actors.ErrUnknownToken):
		return actors.TokenCheck{}, messages.Reject(messages.CodeTokenInvalid, "unknown token")
	case err != nil:
		// The cause stays in the chain for the log; the client sees 503.
		return actors.TokenCheck{}, fmt.Errorf("%w: %w", messages.Reject(messages.CodeStoreUnavailable,
			"the token could not be checked in time; retry"), err)
	}
	if err := sameIdentity(ctx, chk.UserID); err != nil {
		return chk, err
	}
	switch chk.Status {
	case messages.TokenStatus_TOKEN_ACTIVE:
		return chk, nil
	case messages.TokenStatus_TOKEN_WAIT:
		return chk, messages.Reject(messages.CodeTokenNotActive, "token is still waiting in line")
	case messages.TokenStatus_TOKEN_EXPIRED:
		if mode == orPaid && chk.PaidExpired {
			return chk, nil
		}
	}
	return chk, messages.Reject(messages.CodeTokenInvalid, "token has expired")
}

// authorizeUser is authorize for a call made on behalf of userID.
func (s *Service) authorizeUser(ctx context.Context, token string, mode access, userID int64) (actors.TokenCheck, error) {
	if err := sameIdentity(ctx, userID); err != nil {
		return actors.TokenCheck{}, err
	}
	chk, err := s.authorize(ctx, token, mode)
	if err != nil {
		return chk, err
	}
	if chk.UserID != userID {
		return chk, mismatch()
	}
	return chk, nil
}

func mismatch() error {
	return messages.Reject(messages.CodeTokenUserMismatch, "the token belongs to another user")
}
