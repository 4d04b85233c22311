package http

import (
	"bytes"
	"fmt"
	stdhttp "net/http"

	"github.com/gofiber/fiber/v2"
)

// codeUnsupportedMediaType is the 415 of a request body in a content
// coding other than identity.
const codeUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"

// checkCoding refuses, before any route, a request that declares a content
// coding other than identity: 415 UNSUPPORTED_MEDIA_TYPE with
// Accept-Encoding: identity, as RFC 9110 §15.5.16 and §12.5.3 ask.
//
// Why: BodyLimit (MaxBodyBytes) counts the bytes on the wire, but Fiber's
// Ctx.Body inflates gzip, deflate, br and zstd with no limit of its own, so
// 64 KiB of gzip became 66 MB of JSON in memory (a compression bomb; ten at
// once took 2.2 GB). No client of this API needs to compress a body of a
// few dozen bytes, so no coding is served; object (decode.go) also reads
// the raw body, so a route added without this middleware still never
// inflates.
func checkCoding(c *fiber.Ctx) error {
	var coding []byte
	c.Request().Header.VisitAll(func(key, value []byte) {
		if coding == nil && bytes.EqualFold(key, []byte(fiber.HeaderContentEncoding)) && !isIdentity(value) {
			coding = append([]byte(nil), value...)
		}
	})
	if coding == nil {
		return c.Next()
	}
	c.Set(fiber.HeaderAcceptEncoding, "identity")
	if len(coding) > 32 {
		coding = append(coding[:32], "..."...)
	}
	return fiber.NewError(stdhttp.StatusUnsupportedMediaType,
		fmt.Sprintf("Content-Encoding %q is not supported: send the body uncompressed", coding))
}

// isIdentity reports whether a Content-Encoding value names no coding: empty,
// or only "identity" (in any case), possibly listed more than once.
func isIdentity(value []byte) bool {
	for _, token := range bytes.Split(value, []byte(",")) {
		token = bytes.Trim(token, " \t")
		if len(token) > 0 && !bytes.EqualFold(token, []byte("identity")) {
			return false
		}
	}
	return true
}
