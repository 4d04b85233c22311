package http

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	stdhttp "net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// rawExchange writes raw on a new connection to addr and reads the first
// answer; after reports whether the server answered anything more on the
// connection (a second request smuggled in the first one's bytes) before
// closing it, within a second.
func rawExchange(t *testing.T, addr, raw string) (res *stdhttp.Response, body []byte, after string, closed bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = io.WriteString(conn, raw)
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	res, err = stdhttp.ReadResponse(br, nil)
	require.NoError(t, err)
	body, err = io.ReadAll(res.Body)
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(time.Second)))
	rest, err := io.ReadAll(br)
	var ne net.Error
	return res, body, string(rest), err == nil || !(errors.As(err, &ne) && ne.Timeout())
}

// TestAmbiguousFramingRefused sends requests whose body length is
// ambiguous (RFC 9112 §6.1, §6.3: a proxy in front may frame them otherwise
// than this server, and so smuggle a request past it). Each gets 400
// INVALID_REQUEST and the connection closes, so that the bytes a proxy
// would take for a second request are never served. Before, fasthttp took
// the last of two Content-Length headers, Transfer-Encoding over
// Content-Length, and any Transfer-Encoding but identity for chunked.
func TestAmbiguousFramingRefused(t *testing.T) {
	addr := serveFake(t, Config{Booking: &fakeBooking{}})
	const body = `{"name":"ann"}` // 14 bytes
	const chunked = "e\r\n" + body + "\r\n0\r\n\r\n"
	const smuggled = "GET /users/1 HTTP/1.1\r\nHost: x\r\n\r\n"
	head := "POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	for _, tt := range []struct{ name, raw string }{
		// The fresh tester's case: the last one wins in fasthttp, the
		// first in some proxies (which then see a second request).
		{"two Content-Length that disagree", head + "Content-Length: 0\r\nContent-Length: 14\r\n\r\n" + body},
		{"Content-Length then Transfer-Encoding", head + "Content-Length: 14\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked},
		{"Transfer-Encoding then Content-Length", head + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n" + chunked},
		{"Transfer-Encoding gzip, chunked", head + "Transfer-Encoding: gzip, chunked\r\n\r\n" + chunked},
		{"Transfer-Encoding gzip", head + "Transfer-Encoding: gzip\r\n\r\n" + chunked},
		{"Transfer-Encoding xchunked", head + "Transfer-Encoding: xchunked\r\n\r\n" + chunked},
		{"Transfer-Encoding identity", head + "Transfer-Encoding: identity\r\nContent-Length: 14\r\n\r\n" + body},
		{"Transfer-Encoding chunked twice", head + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked},
		{"Transfer-Encoding chunked, chunked", head + "Transfer-Encoding: chunked, chunked\r\n\r\n" + chunked},
		{"Transfer-Encoding empty", head + "Transfer-Encoding: \r\nContent-Length: 14\r\n\r\n" + body},
		{"two Content-Length on a GET", "GET /users/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, raw, after, closed := rawExchange(t, addr, tt.raw+smuggled)
			require.Equal(t, stdhttp.StatusBadRequest, res.StatusCode, "body %s", raw)
			var e apiError
			require.NoError(t, json.Unmarshal(raw, &e), "body %s", raw)
			require.Equal(t, "INVALID_REQUEST", e.Code)
			require.Equal(t, "application/json", strings.Split(res.Header.Get("Content-Type"), ";")[0])
			require.True(t, res.Close, "the answer must close the connection")
			require.True(t, closed, "the server must close the connection")
			require.Empty(t, after, "nothing more may be served on the connection")
		})
	}
}

// TestUnambiguousFramingServed: the well-framed forms are served as
// before, on a connection that stays open.
func TestUnambiguousFramingServed(t *testing.T) {
	addr := serveFake(t, Config{Booking: &fakeBooking{}})
	const body = `{"name":"ann"}`
	const chunked = "e\r\n" + body + "\r\n0\r\n\r\n"
	head := "POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	for _, tt := range []struct{ name, raw string }{
		{"Content-Length", head + "Content-Length: 14\r\n\r\n" + body},
		{"Content-Length twice, the same (RFC 9110 §8.6)", head + "Content-Length: 14\r\ncontent-length: 14\r\n\r\n" + body},
		{"chunked", head + "Transfer-Encoding: chunked\r\n\r\n" + chunked},
		{"Chunked in capitals", head + "transfer-encoding:  Chunked \r\n\r\n" + chunked},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, raw, _, _ := rawExchange(t, addr, tt.raw)
			require.Equal(t, stdhttp.StatusCreated, res.StatusCode, "body %s", raw)
			require.False(t, res.Close)
		})
	}
}
