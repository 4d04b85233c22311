package http

import (
	"errors"
	"net"
	"strings"

	"github.com/valyala/fasthttp"
)

// errMalformed is the one answer to a request fasthttp cannot parse.
var errMalformed = errors.New("malformed HTTP request: its request line, header section or chunked body cannot be parsed")

// parseError is what the answer to a request fasthttp could not parse is
// made from, handed to Fiber's server error handler (which picks the
// status: 431 for a header section over the read buffer, 413, 408, 405)
// and from it to errorHandler.
//
// Why: fasthttp's parse errors quote the bytes read, Authorization header
// included ("Buffer size=…, contents: …"), and Fiber sends that text as
// the 400's message; a proxy or client that logs error bodies would log a
// token. The kinds Fiber maps to their own status pass through; any other
// is errMalformed, which quotes nothing.
func parseError(err error) error {
	var (
		small *fasthttp.ErrSmallBuffer
		ne    net.Error
	)
	switch {
	case errors.As(err, &small), errors.As(err, &ne),
		errors.Is(err, fasthttp.ErrBodyTooLarge), errors.Is(err, fasthttp.ErrGetOnly),
		strings.Contains(err.Error(), "timeout"): // Fiber's test for 408
		return err
	}
	return errMalformed
}
