package booking

import (
	"context"
	"errors"

	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// CreateUser registers a user.
func (s *Service) CreateUser(ctx context.Context, name string) (persistence.User, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	u, err := s.catalog.CreateUser(ctx, name)
	if err != nil {
		return persistence.User{}, err
	}
	s.users.put(u.ID, struct{}{})
	return u, nil
}

// IssueToken returns the user's live queue token, issuing one at the back
// of the line if there is none. USER_NOT_FOUND for an unknown user.
func (s *Service) IssueToken(ctx context.Context, userID int64) (*messages.Token, error) {
	if err := sameIdentity(ctx, userID); err != nil {
		return nil, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.userExists(ctx, userID); err != nil {
		return nil, err
	}
	return tokenOf(s.router.Request(ctx, kindQueue, queueID, &messages.IssueToken{UserId: userID}))
}

// Token returns a token's current status and place in line, as the queue
// manager knows it (polling keeps a waiting token in line).
func (s *Service) Token(ctx context.Context, token string) (*messages.Token, error) {
	if token == "" {
		return nil, messages.Reject(messages.CodeTokenInvalid, "missing bearer token")
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	t, err := tokenOf(s.router.Request(ctx, kindQueue, queueID, &messages.GetToken{Token: token}))
	if err == nil {
		err = sameIdentity(ctx, t.GetUserId())
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

// userExists answers USER_NOT_FOUND for an unknown user. Users are never
// deleted, so a user once seen is remembered.
func (s *Service) userExists(ctx context.Context, userID int64) error {
	if _, ok := s.users.get(userID); ok {
		return nil
	}
	if _, err := s.catalog.User(ctx, userID); err != nil {
		if errors.Is(err, persistence.ErrNotFound) {
			return messages.Reject(messages.CodeUserNotFound, "user %d not found", userID)
		}
		return err
	}
	s.users.put(userID, struct{}{})
	return nil
}
