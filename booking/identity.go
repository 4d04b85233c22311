package booking

import (
	"context"

	"github.com/concert/ticketing/messages"
)

type identityKey struct{}

// WithIdentity returns ctx carrying the user id an authenticating gateway
// vouched for (the trusted-identity mode). Every call the service makes on
// behalf of a user — by the userId it names or by the user its token
// belongs to — then refuses any other user with IDENTITY_MISMATCH (403;
// IDENTITY_REQUIRED, 403, is the HTTP layer's for a request without one). A
// context without an identity is not checked (the mode is off).
func WithIdentity(ctx context.Context, userID int64) context.Context {
	return context.WithValue(ctx, identityKey{}, userID)
}

// IdentityOf returns the identity ctx carries, if any (for a route that
// checks tokens without the service, as the token stream does).
func IdentityOf(ctx context.Context) (int64, bool) { return identity(ctx) }

// identity returns the identity ctx carries, if any.
func identity(ctx context.Context) (int64, bool) {
	id, ok := ctx.Value(identityKey{}).(int64)
	return id, ok
}

// sameIdentity refuses a call for userID when ctx carries another identity.
func sameIdentity(ctx context.Context, userID int64) error {
	if id, ok := identity(ctx); ok && id != userID {
		return messages.Reject(messages.CodeIdentityMismatch, "the request acts for another user than its identity")
	}
	return nil
}
