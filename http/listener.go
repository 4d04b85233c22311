package http

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// acceptWindow is how long a stopping listener still accepts the
// connections whose handshake was under way when new ones started to be
// refused (one round trip is enough; this covers slow networks).
const acceptWindow = 200 * time.Millisecond

// Listen opens a TCP listener on addr (host:port) suited to Server: plain
// TCP rather than Multipath TCP (Go's default for listeners on Linux since
// Go 1.24), because an MPTCP socket takes no socket filter, without which a
// stop must reset the connections queued in the backlog (stopListener).
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}

// stopListener is the Server's listener: it registers every connection it
// accepts, and stops without resetting a connection the client already
// sees as established.
//
// Closing a listening socket resets the connections queued in its backlog
// — handshake done, not yet accepted — whose clients may have sent a
// request already. So stop first makes the kernel drop new connection
// attempts (refuseNewConnections: a SYN filter on Linux; their clients
// retry the SYN and then get a plain refusal), keeps accepting for
// acceptWindow so that the backlog and the handshakes under way are taken
// and served, then closes the socket. Where no filter can be set, it closes
// at once.
type stopListener struct {
	net.Listener
	srv  *Server
	once sync.Once
}

func newStopListener(ln net.Listener, srv *Server) *stopListener {
	return &stopListener{Listener: ln, srv: srv}
}

// Accept accepts and registers the next connection. A transient failure
// — out of file descriptors (EMFILE, ENFILE), buffers, or a connection
// aborted before it was accepted — is retried with backoff, as net/http
// does: fasthttp would take it as permanent and stop serving for good, so
// a client opening more connections than the process may hold would stop
// the server.
func (l *stopListener) Accept() (net.Conn, error) {
	wait := time.Duration(0)
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			return l.srv.track(c), nil
		}
		if !transientAcceptError(err) {
			return nil, err
		}
		wait = min(max(2*wait, 5*time.Millisecond), time.Second)
		if wait == time.Second || wait == 5*time.Millisecond {
			l.srv.log.Warn("accept failed; retrying", "err", err, "in", wait)
		}
		time.Sleep(wait)
	}
}

// transientAcceptError reports whether an accept failure passes by itself.
func transientAcceptError(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED)
}

// stop refuses new connections, accepts the ones already on their way for
// acceptWindow (less if ctx ends first), then closes the listener.
func (l *stopListener) stop(ctx context.Context) {
	l.once.Do(func() {
		if err := refuseNewConnections(l.Listener); err != nil {
			l.srv.log.Warn("closing the listener at once: connections queued in its backlog are reset", "err", err)
		} else {
			t := time.NewTimer(acceptWindow)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		_ = l.Listener.Close()
	})
}
