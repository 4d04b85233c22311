package http

import (
	"bytes"

	"github.com/gofiber/fiber/v2"

	"github.com/concert/ticketing/messages"
)

// checkFraming refuses a request whose body length is ambiguous, before
// any route sees it: 400 INVALID_REQUEST, and the connection closes.
//
// Why: a proxy in front of the service may frame such a request otherwise
// than fasthttp does, and then what one takes for the rest of a body the
// other serves as a second request (request smuggling). fasthttp settles
// the ambiguities silently: of two Content-Length headers it takes the
// last, Transfer-Encoding overrides Content-Length, and any
// Transfer-Encoding but "identity" reads the body as chunked. RFC 9112
// wants them refused (§6.1: Transfer-Encoding with Content-Length; a
// transfer coding other than a final chunked, which is the only one served
// here; §6.3: Content-Length values that differ), and the connection
// closed, since the bytes after the request cannot be told apart.
//
// What is served: a Content-Length, repeated only with the same value (RFC
// 9110 §8.6 lets a recipient take identical copies as one); or one
// Transfer-Encoding that is exactly "chunked" (in any case) without
// Content-Length. fasthttp parses the header before this runs but keeps the
// raw lines (RawHeaders), which are what the client sent.
func checkFraming(c *fiber.Ctx) error {
	raw := c.Request().Header.RawHeaders()
	var (
		length      []byte
		lengths     int
		encodings   int
		unsupported []byte
	)
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		key, value := line[:colon], bytes.Trim(line[colon+1:], " \t\r")
		switch {
		case bytes.EqualFold(key, []byte(fiber.HeaderContentLength)):
			if lengths > 0 && !bytes.Equal(value, length) {
				return refuseFraming(c, "Content-Length headers disagree")
			}
			length = value
			lengths++
		case bytes.EqualFold(key, []byte(fiber.HeaderTransferEncoding)):
			encodings++
			if !bytes.EqualFold(value, []byte("chunked")) && unsupported == nil {
				unsupported = value
			}
		}
	}
	switch {
	case encodings > 0 && lengths > 0:
		return refuseFraming(c, "Transfer-Encoding and Content-Length together")
	case unsupported != nil:
		return refuseFraming(c, "Transfer-Encoding %q is not supported: only chunked is", unsupported)
	case encodings > 1:
		return refuseFraming(c, "more than one Transfer-Encoding: only chunked, once, is supported")
	}
	return c.Next()
}

// refuseFraming answers 400 INVALID_REQUEST and closes the connection: what
// follows the request on it cannot be told from its body.
func refuseFraming(c *fiber.Ctx, format string, args ...any) error {
	c.Context().SetConnectionClose()
	return messages.Reject(messages.CodeInvalidRequest, "ambiguous request framing: "+format, args...)
}
