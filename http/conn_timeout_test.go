package http

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestUnusedConnectionClosedWithoutAnswer: a connection on which the
// client never sends a byte is closed at the read timeout with nothing
// written (fasthttp wrote a 400 "Request Timeout" there, which Go's client
// logs as an unsolicited response on an idle connection and a pipelining
// client could take for its next answer); a request sent after part of it
// timed out is still answered, and a normal one is unaffected.
func TestUnusedConnectionClosedWithoutAnswer(t *testing.T) {
	app := New(Config{Booking: &fakeBooking{}, Logger: slog.New(slog.DiscardHandler)})
	app.Server().ReadTimeout = 300 * time.Millisecond
	addr, _ := serveApp(t, app, slog.New(slog.DiscardHandler))

	read := func(c net.Conn) string {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
		b, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("the connection was neither answered nor closed: %q", b)
		}
		return string(b)
	}

	unused, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer unused.Close()
	require.Empty(t, read(unused), "an answer on a connection that asked nothing")

	half, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer half.Close()
	_, err = half.Write([]byte("GET /healthz HTTP/1.1\r\n"))
	require.NoError(t, err)
	require.Contains(t, read(half), "HTTP/1.1 ", "a request cut by the timeout gets its error answer")

	whole, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer whole.Close()
	_, err = whole.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	require.NoError(t, err)
	require.Contains(t, read(whole), "HTTP/1.1 200", "a normal request")
}
