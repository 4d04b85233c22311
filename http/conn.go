package http

import (
	"net"
	"sync/atomic"
	"time"
)

// Phases of a served connection (conn.phase).
const (
	// phaseIdle: no byte of a next request has been read; the connection
	// may be closed without cutting a request.
	phaseIdle int32 = iota
	// phaseBusy: a request is being read, handled or answered.
	phaseBusy
	// phaseClosed: closed, or being closed; nothing more is served.
	phaseClosed
)

// Bounds of a lingering close (as nginx's lingering_time,
// lingering_timeout): after the answer, what the client still sends is read
// and discarded for at most lingerTime in all, lingerTimeout between two
// reads, and lingerBytes.
const (
	lingerTime    = 10 * time.Second
	lingerTimeout = 2 * time.Second
	lingerBytes   = 16 << 20
)

// conn is one accepted connection as the Server tracks it: whether a
// request is under way on it (so a stop closes only idle connections, and
// none of those with a request half read), and how it is closed.
//
// Closing it (what fasthttp does after the last answer) is a lingering
// close: the write side is shut, then what the client still sends is read
// and discarded (bounded) before the socket is closed. Closing a socket with
// unread data makes the kernel send a reset, which can destroy the answer
// the client has not read yet — a client still writing a body refused with
// 413 would see "broken pipe" or "connection reset" instead of the 413.
type conn struct {
	net.Conn
	srv *Server
	// phase is phaseIdle, phaseBusy or phaseClosed.
	phase atomic.Int32
	// idleSince is when the connection last became idle (Unix ns).
	idleSince atomic.Int64
	// sawEOF: the client closed its side (nothing left to linger for).
	sawEOF atomic.Bool
	// asked: a byte of a request was read. idleOut: a read timed out
	// before any was. Together, they drop fasthttp's unasked answer (Write).
	asked, idleOut atomic.Bool
}

func newConn(c net.Conn, srv *Server) *conn {
	tc := &conn{Conn: c, srv: srv}
	tc.idleSince.Store(time.Now().UnixNano())
	return tc
}

// Read reads from the connection; bytes that arrive make it busy. If the
// connection was closed as idle meanwhile, they are dropped: the request
// they start is never served (its client sees the connection closed, as it
// would had they arrived a moment later).
func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.enter() {
		return 0, net.ErrClosed
	}
	if n > 0 {
		c.asked.Store(true)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() && !c.asked.Load() {
		c.idleOut.Store(true)
	}
	if n == 0 && err != nil && isEOF(err) {
		c.sawEOF.Store(true)
	}
	return n, err
}

// Write writes to the connection, except after its first read timed out
// before the client sent a byte: fasthttp answers that with an error
// response (Fiber's "Request Timeout"), which a client that opened the
// connection and has not used it yet (Go's transport dials ahead) reads as
// an unsolicited answer, and a pipelining client could take for the answer
// to its next request. That write is dropped and the connection closed, as
// net/http does. Other writes before a request (fasthttp's 503 when over
// its concurrency limit) still go out.
func (c *conn) Write(p []byte) (int, error) {
	if c.idleOut.Load() && !c.asked.Load() {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// enter marks the connection busy; false if it is closed.
func (c *conn) enter() bool {
	for {
		switch p := c.phase.Load(); p {
		case phaseBusy:
			return true
		case phaseClosed:
			return false
		default:
			if c.phase.CompareAndSwap(p, phaseBusy) {
				return true
			}
		}
	}
}

// idle marks the connection idle after an answer (unless it is closed).
func (c *conn) idle() {
	c.idleSince.Store(time.Now().UnixNano())
	c.phase.CompareAndSwap(phaseBusy, phaseIdle)
}

// closeIfIdle closes the connection at once if it has been idle since
// before cutoff, and reports whether it did.
func (c *conn) closeIfIdle(cutoff time.Time) bool {
	if c.idleSince.Load() > cutoff.UnixNano() || !c.phase.CompareAndSwap(phaseIdle, phaseClosed) {
		return false
	}
	_ = c.Conn.Close()
	c.srv.forget(c)
	return true
}

// abort closes the connection at once, whatever is under way on it. It
// reports whether that cut it short: false for a connection already closing
// (answered, lingering).
func (c *conn) abort() bool {
	open := c.phase.Swap(phaseClosed) != phaseClosed
	_ = c.Conn.Close()
	if open {
		c.srv.forget(c)
	}
	return open
}

// Close closes the connection with a lingering close, in the background.
func (c *conn) Close() error {
	if c.phase.Swap(phaseClosed) == phaseClosed {
		return nil
	}
	go c.linger()
	return nil
}

// linger shuts the write side, discards what the client still sends
// (bounded by lingerTime, lingerTimeout and lingerBytes), then closes.
func (c *conn) linger() {
	defer c.srv.forget(c)
	defer c.Conn.Close()
	hc, ok := c.Conn.(interface{ CloseWrite() error })
	if c.sawEOF.Load() || !ok || hc.CloseWrite() != nil {
		return
	}
	buf := c.srv.lingerBuf()
	defer c.srv.putLingerBuf(buf)
	end := time.Now().Add(lingerTime)
	for read := 0; read < lingerBytes; {
		deadline := time.Now().Add(lingerTimeout)
		if deadline.After(end) {
			deadline = end
		}
		if c.Conn.SetReadDeadline(deadline) != nil {
			return
		}
		n, err := c.Conn.Read(*buf)
		read += n
		if err != nil {
			return
		}
	}
}
