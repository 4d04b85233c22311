package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// Timing of a graceful stop.
const (
	// idleGrace: during a stop, a keep-alive connection idle this long is
	// closed. A client may be sending its next request at the very moment
	// the server closes an idle connection (HTTP/1.1 cannot rule that out);
	// waiting a while makes that unlikely for a client that is using it.
	idleGrace = time.Second
	// drainTick is how often a stop looks for idle connections to close.
	drainTick = 50 * time.Millisecond
)

// Server serves an app made by New on a listener, and stops it without
// cutting a request it has started to read:
//
//   - Shutdown stops taking connections (see stopListener);
//   - every request read before or during the stop is answered, with
//     "Connection: close";
//   - a connection is closed once idle for idleGrace (or at once by its
//     client after the "Connection: close" answer);
//   - Shutdown returns when every connection is closed, or when its context
//     ends: the connections left are then cut and it reports how many.
//
// Every connection is closed with a lingering close (conn.Close). A Server
// serves once.
type Server struct {
	app *fiber.App
	log *slog.Logger

	draining atomic.Bool
	bufs     sync.Pool // *[]byte scratch buffers of lingering closes

	mu       sync.Mutex
	conns    map[*conn]struct{}
	ln       *stopListener
	stopping bool          // Shutdown has begun: Serve serves no more
	closed   bool          // the listener is closed: no connection comes any more
	empty    chan struct{} // closed once closed is set and conns is empty
}

// NewServer wraps app (made by New; not yet serving) for Serve and
// Shutdown. logger nil means slog.Default().
func NewServer(app *fiber.App, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{app: app, log: logger, conns: map[*conn]struct{}{}, empty: make(chan struct{})}
	s.bufs.New = func() any { b := make([]byte, 32<<10); return &b }
	fs := app.Server()
	inner := fs.Handler
	fs.Handler = func(ctx *fasthttp.RequestCtx) {
		// A request on a connection closed as idle is not served (its bytes
		// were read before the close was noticed; see conn.Read).
		if c, ok := ctx.Conn().(*conn); ok && !c.enter() {
			ctx.SetConnectionClose()
			return
		}
		inner(ctx)
		if s.draining.Load() {
			ctx.SetConnectionClose()
		}
	}
	fs.ConnState = func(nc net.Conn, state fasthttp.ConnState) {
		if c, ok := nc.(*conn); ok && state == fasthttp.StateIdle {
			c.idle()
		}
	}
	return s
}

// App is the served app.
func (s *Server) App() *fiber.App { return s.app }

// Serve answers HTTP on ln until Shutdown; it returns nil after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	sl := newStopListener(ln, s)
	s.mu.Lock()
	if s.stopping || s.ln != nil {
		s.mu.Unlock()
		_ = ln.Close()
		if s.stopping {
			return nil
		}
		return errors.New("http server: Serve called twice")
	}
	s.ln = sl
	s.mu.Unlock()
	if err := s.app.Listener(sl); err != nil {
		return fmt.Errorf("http server: %w", err)
	}
	return nil
}

// Shutdown stops the server gracefully (see Server). It returns nil once
// every connection is closed, or, when ctx ends first, an error saying how
// many connections were cut (they are closed at once).
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.mu.Lock()
	s.stopping = true
	ln := s.ln
	s.mu.Unlock()
	if ln != nil {
		ln.stop(ctx)
	}
	s.mu.Lock()
	s.closed = true
	if len(s.conns) == 0 {
		s.closeEmpty()
	}
	s.mu.Unlock()
	t := time.NewTicker(drainTick)
	defer t.Stop()
	for {
		s.closeIdle(time.Now().Add(-idleGrace))
		select {
		case <-s.empty:
			return nil
		case <-t.C:
		case <-ctx.Done():
			if n := s.abortAll(); n > 0 {
				return fmt.Errorf("http server: drain deadline passed, %d connections cut: %w", n, ctx.Err())
			}
			return nil
		}
	}
}

// track registers an accepted connection.
func (s *Server) track(nc net.Conn) *conn {
	c := newConn(nc, s)
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	return c
}

// forget unregisters a closed connection (idempotent).
func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if s.closed && len(s.conns) == 0 {
		s.closeEmpty()
	}
	s.mu.Unlock()
}

// closeEmpty closes s.empty once; s.mu is held.
func (s *Server) closeEmpty() {
	select {
	case <-s.empty:
	default:
		close(s.empty)
	}
}

// closeIdle closes the connections idle since before cutoff.
func (s *Server) closeIdle(cutoff time.Time) {
	for _, c := range s.snapshot() {
		c.closeIfIdle(cutoff)
	}
}

// abortAll closes every connection at once and returns how many of them
// were cut short (not already answered and closing).
func (s *Server) abortAll() int {
	n := 0
	for _, c := range s.snapshot() {
		if c.abort() {
			n++
		}
	}
	return n
}

func (s *Server) snapshot() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		list = append(list, c)
	}
	return list
}

func (s *Server) lingerBuf() *[]byte     { return s.bufs.Get().(*[]byte) }
func (s *Server) putLingerBuf(b *[]byte) { s.bufs.Put(b) }

func isEOF(err error) bool { return errors.Is(err, io.EOF) }
