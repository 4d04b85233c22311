package http

import (
	"encoding/json"
	stdhttp "net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestParseErrorsQuoteNothing sends requests fasthttp cannot parse, each
// carrying a secret bearer token. Before, the 400's message was fasthttp's
// error text, which quotes the bytes read ("Buffer size=…, contents: …"),
// token included. Each is now 400 INVALID_REQUEST with a fixed message,
// in the contract's error shape.
func TestParseErrorsQuoteNothing(t *testing.T) {
	addr := serveFake(t, Config{Booking: &fakeBooking{}})
	const secret = "s3cr3t-token-value"
	for _, tt := range []struct{ name, raw string }{
		{"no method", " /users HTTP/1.1\r\nAuthorization: Bearer " + secret + "\r\n\r\n"},
		{"space in a header name", "GET /users/token HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nBad Name: v\r\n\r\n"},
		{"bad Content-Length", "POST /users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nContent-Length: 1x\r\n\r\n{}"},
		{"bad chunk size", "POST /users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret +
			"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, body, _, _ := rawExchange(t, addr, tt.raw)
			require.Equal(t, stdhttp.StatusBadRequest, res.StatusCode, "body %s", body)
			require.NotContains(t, string(body), secret, "the answer quotes the request")
			var e apiError
			require.NoError(t, json.Unmarshal(body, &e), "body %s", body)
			require.Equal(t, "INVALID_REQUEST", e.Code)
		})
	}
}

// TestOversizedHeadersRead431: a request line and header section over
// MaxHeaderBytes is 431 HEADERS_TOO_LARGE (it was a 400 that quoted the
// request), and one just under is served.
func TestOversizedHeadersRead431(t *testing.T) {
	addr := serveFake(t, Config{Booking: &fakeBooking{}})
	head := "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: "
	res, body, _, _ := rawExchange(t, addr, head+strings.Repeat("p", MaxHeaderBytes)+"\r\n\r\n")
	require.Equal(t, stdhttp.StatusRequestHeaderFieldsTooLarge, res.StatusCode, "body %s", body)
	var e apiError
	require.NoError(t, json.Unmarshal(body, &e), "body %s", body)
	require.Equal(t, "HEADERS_TOO_LARGE", e.Code)
	require.NotContains(t, string(body), "ppp")

	res, body, _, _ = rawExchange(t, addr, head+strings.Repeat("p", MaxHeaderBytes/2)+"\r\n\r\n")
	require.Equal(t, stdhttp.StatusOK, res.StatusCode, "body %s", body)
}
