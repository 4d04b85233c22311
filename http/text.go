package http

import (
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
)

// Limits of client text, in characters: Unicode code points, as the OpenAPI
// maxLength and PostgreSQL's char_length count them (a Korean syllable is
// one character, three bytes).
const (
	maxNameLen           = 100 // a user's name
	maxTitleLen          = 200 // a concert's title
	maxIdempotencyKeyLen = 255 // the Idempotency-Key header
	maxTokenLen          = 255 // the token of an Authorization: Bearer header
	maxAdminKeyLen       = 255 // the X-Admin-Key header
	maxParamLen          = 64  // a path or query value (ids, dates)
)

// text is the one rule for every string a client sends — header, JSON
// string field, query value or path parameter — before it is used: it must
// be text that protobuf and PostgreSQL can hold, that is valid UTF-8
// (proto3 strings must be) without a NUL character (PostgreSQL text cannot
// hold one), of at most max characters. Anything else is a 400
// INVALID_REQUEST naming field; s itself is never echoed.
func text(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return invalid("%s must be UTF-8 text", field)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return invalid("%s must not contain NUL characters", field)
	}
	// Counting is only needed when the bytes could exceed the limit.
	if len(s) > max && utf8.RuneCountInString(s) > max {
		return invalid("%s must be at most %d characters", field, max)
	}
	return nil
}

// headerText returns a request header checked by text ("" when absent).
// The value aliases the request's buffer: strings.Clone what outlives the
// handler.
func headerText(c *fiber.Ctx, name string, max int) (string, error) {
	v, err := oneHeader(c, name)
	if err != nil {
		return "", err
	}
	if err := text(name, v, max); err != nil {
		return "", err
	}
	return v, nil
}

// idempotencyKey returns the optional Idempotency-Key header, checked by
// text, as a copy (it reaches actors and journals). "" means no key.
func idempotencyKey(c *fiber.Ctx) (string, error) {
	key, err := headerText(c, "Idempotency-Key", maxIdempotencyKeyLen)
	if err != nil {
		return "", err
	}
	return strings.Clone(key), nil
}

// bearer returns the token of an "Authorization: Bearer <token>" header, or
// "" when there is none (which the service answers TOKEN_INVALID). The
// header is checked by text, the token for its length; the token is a copy:
// it may outlive the request (an actor message, a token to expire).
func bearer(c *fiber.Ctx) (string, error) {
	h, err := oneHeader(c, fiber.HeaderAuthorization)
	if err != nil {
		return "", err
	}
	if err := text(fiber.HeaderAuthorization, h, len("Bearer ")+maxTokenLen); err != nil {
		return "", err
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", nil
	}
	token = strings.TrimSpace(token)
	if err := text("bearer token", token, maxTokenLen); err != nil {
		return "", err
	}
	return strings.Clone(token), nil
}

// oneHeader returns the header name ("" when absent), which must be sent
// at most once: 400 INVALID_REQUEST otherwise. Why: of two copies fasthttp
// serves the first, and a proxy in front may check or log the other (a
// second Authorization, X-Admin-Key or Idempotency-Key); refusing is the
// one reading both agree on (RFC 9110 §5.3 allows a repeated field only for
// list-valued ones). The value aliases the request's buffer.
func oneHeader(c *fiber.Ctx, name string) (string, error) {
	if n := len(c.Request().Header.PeekAll(name)); n > 1 {
		return "", invalid("the %s header must be sent once, not %d times", name, n)
	}
	return c.Get(name), nil
}
