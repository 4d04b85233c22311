package main

import (
	"io"
	"net"
	stdhttp "net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/concert/ticketing/persistence/pgtest"
)

// TestOutOfFileDescriptorsDoesNotStopTheServer: a client opening more
// connections than the process may hold files made accept fail with EMFILE,
// which fasthttp took as permanent: the server stopped for good (exit 1).
// Now accept retries; once the connections close the server answers again.
func TestOutOfFileDescriptorsDoesNotStopTheServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a server process")
	}
	bin := buildBinary(t)
	addr := freeAddr(t)
	cmd := exec.Command("sh", "-c", "ulimit -n 200 && exec "+bin)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+pgtest.NewDatabaseURL(t), "HTTP_ADDR="+addr, "LOG_LEVEL=error")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { _ = cmd.Process.Signal(syscall.SIGKILL); <-exited }()
	healthy := func() bool {
		c := &stdhttp.Client{Timeout: 2 * time.Second, Transport: &stdhttp.Transport{DisableKeepAlives: true}}
		res, err := c.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	}
	waitFor(t, 30*time.Second, healthy)

	var conns []net.Conn
	for range 400 {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	time.Sleep(500 * time.Millisecond) // let the server hit its limit
	select {
	case err := <-exited:
		t.Fatalf("the server exited when it ran out of file descriptors: %v", err)
	default:
	}
	for _, c := range conns {
		_ = c.Close()
	}
	waitFor(t, 30*time.Second, healthy)
	select {
	case err := <-exited:
		t.Fatalf("the server exited: %v", err)
	default:
	}
}
