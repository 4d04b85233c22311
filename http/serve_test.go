package http

import (
	"context"
	"io"
	"log/slog"
	"net"
	stdhttp "net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"
)

// serveFake serves New(cfg) through a Server on a loopback port until the
// end of the test, and returns its address.
func serveFake(t *testing.T, cfg Config) string {
	t.Helper()
	addr, _ := serveFakeServer(t, cfg)
	return addr
}

// serveFakeServer is serveFake that also returns the Server.
func serveFakeServer(t *testing.T, cfg Config) (string, *Server) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return serveApp(t, New(cfg), cfg.Logger)
}

// serveApp serves app through a Server on a loopback port until the end
// of the test, and returns its address and the Server.
func serveApp(t *testing.T, app *fiber.App, logger *slog.Logger) (string, *Server) {
	t.Helper()
	srv := NewServer(app, logger)
	ln, err := Listen(context.Background(), "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
	})
	return ln.Addr().String(), srv
}

// TestShutdownAnswersRequestsInFlight stops a server while a request is
// being handled and a keep-alive connection sits idle: new connections are
// refused at once, the request in flight gets its whole answer (with
// Connection: close), the idle connection is closed, and Shutdown returns
// nil once all of that is done.
func TestShutdownAnswersRequestsInFlight(t *testing.T) {
	fb := &fakeBooking{entered: make(chan struct{}, 1), release: make(chan struct{})}
	addr, srv := serveFakeServer(t, Config{Booking: fb})
	base := "http://" + addr

	idle := &stdhttp.Client{Transport: &stdhttp.Transport{}}
	res, err := idle.Get(base + "/healthz")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()

	type answer struct {
		res *stdhttp.Response
		err error
	}
	inFlight := make(chan answer, 1)
	go func() {
		req, _ := stdhttp.NewRequest("PATCH", base+"/customers/point", strings.NewReader(`{"userId":1,"chargeBalance":5}`))
		res, err := (&stdhttp.Client{Transport: &stdhttp.Transport{}}).Do(req)
		if err == nil {
			_, err = io.ReadAll(res.Body)
			res.Body.Close()
		}
		inFlight <- answer{res, err}
	}()
	<-fb.entered

	stopped := make(chan error, 1)
	start := time.Now()
	go func() { stopped <- srv.Shutdown(context.Background()) }()
	waitUntil(t, 5*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	close(fb.release)
	a := <-inFlight
	require.NoError(t, a.err)
	require.Equal(t, 200, a.res.StatusCode)
	require.True(t, a.res.Close, "answered with Connection: close")
	require.NoError(t, <-stopped)
	require.Less(t, time.Since(start), idleGrace+2*time.Second)
}

func waitUntil(t *testing.T, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestShutdownCutsAtDeadline: a request still running when the drain
// deadline passes is cut, and Shutdown says so.
func TestShutdownCutsAtDeadline(t *testing.T) {
	fb := &fakeBooking{entered: make(chan struct{}, 1), release: make(chan struct{})}
	defer close(fb.release)
	addr, srv := serveFakeServer(t, Config{Booking: fb})
	go func() {
		req, _ := stdhttp.NewRequest("PATCH", "http://"+addr+"/customers/point", strings.NewReader(`{"userId":1,"chargeBalance":5}`))
		if res, err := stdhttp.DefaultClient.Do(req); err == nil {
			res.Body.Close()
		}
	}()
	<-fb.entered
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := srv.Shutdown(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Contains(t, err.Error(), "1 connections cut")
}
