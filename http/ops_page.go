package http

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// The live operations page, GET /ops (Config.OpsPage): one self-contained
// HTML document — its style and script inline, no external asset, no
// library — that polls GET /ops/data (ops_data.go) every second. Its
// Content-Security-Policy admits only that inline style and script (by
// their hashes) and requests to this origin.

//go:embed ops.html
var opsPage []byte

// opsCSP is the page's Content-Security-Policy.
var opsCSP = "default-src 'none'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; " +
	"style-src " + inlineHash(opsPage, "<style>", "</style>") + "; " +
	"script-src " + inlineHash(opsPage, "<script>", "</script>")

// inlineHash is the CSP source of the content between the first open and
// close tags of page ('sha256-…').
func inlineHash(page []byte, open, close string) string {
	s := string(page)
	i := strings.Index(s, open)
	j := strings.Index(s, close)
	if i < 0 || j < i {
		panic("ops.html: no " + open)
	}
	sum := sha256.Sum256([]byte(s[i+len(open) : j]))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// opsPageHandler: GET /ops → the page.
func opsPageHandler(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("Content-Security-Policy", opsCSP)
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Referrer-Policy", "no-referrer")
	return c.Send(opsPage)
}
