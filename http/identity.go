package http

import (
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/concert/ticketing/booking"
	"github.com/concert/ticketing/messages"
)

// The trusted-identity mode: behind an authenticating gateway, the gateway
// names the user it authenticated in a header (Config.IdentityHeader), as
// the decimal userId of this service. Every user route then requires it,
// and acts only for that user: a userId in the request, or the user a
// queue token belongs to, must be the same (booking.WithIdentity). The
// service must then be reachable only through the gateway, which must set
// (or remove) the header on every request it forwards: a client that can
// reach the service directly can name any user. Both refusals are 403
// (errors.go): IDENTITY_REQUIRED, IDENTITY_MISMATCH.

// maxIdentityLen bounds the identity header's text: a positive int64.
const maxIdentityLen = 64

// identity is the middleware of the user routes: with the mode on, it
// reads the gateway's identity header into the request's context, and
// refuses a request without a valid one (403 IDENTITY_REQUIRED).
func (h *handlers) identity(c *fiber.Ctx) error {
	if h.identityHeader == "" {
		return c.Next()
	}
	v, err := headerText(c, h.identityHeader, maxIdentityLen)
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if v == "" || err != nil || id <= 0 || v[0] == '+' {
		return messages.Reject(messages.CodeIdentityRequired, "this route needs the user identity the gateway sets in %s", h.identityHeader)
	}
	c.SetUserContext(booking.WithIdentity(c.UserContext(), id))
	return c.Next()
}
