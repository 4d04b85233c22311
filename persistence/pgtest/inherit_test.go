package pgtest

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServerHoldsNoInheritedDescriptor: a pipe this process holds without
// close-on-exec (as a fuzzing worker holds its pipes to the coordinator)
// must not stay open in a server started from it, or whoever waits for the
// pipe to close waits as long as the server runs.
func TestServerHoldsNoInheritedDescriptor(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil { // no O_CLOEXEC, unlike os.Pipe
		t.Fatal(err)
	}
	r, w := p[0], p[1]
	defer syscall.Close(r)
	NewServer(t)

	// With our write end closed, the read end sees end-of-file only if no
	// other process (the server) holds a copy of the write end.
	if err := syscall.Close(w); err != nil {
		t.Fatal(err)
	}
	if err := syscall.SetNonblock(r, true); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := syscall.Read(r, buf)
		if err == nil && n == 0 {
			return // end of file: nobody else holds the pipe
		}
		if !errors.Is(err, syscall.EAGAIN) {
			t.Fatalf("read: %d, %v", n, err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the pipe's write end is still open after ours was closed: the server inherited it")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReapOrphans: a server nobody holds (its owner ended without Close)
// is stopped and its directory removed; one whose owner lives, or that a
// process it was handed to still holds, is left alone.
func TestReapOrphans(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	orphan := startToReap(t)
	alive := NewServer(t)

	// A test binary the orphan's server was handed to still runs.
	child, err := os.Open(filepath.Join(orphan.dir, ownerFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(child.Fd()), syscall.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	orphan.owner.Close() // its owner dies without Close
	reapOrphans()
	if !accepts(orphan) {
		t.Fatal("a server still in use by a process it was handed to was stopped")
	}

	child.Close() // the last user goes
	reapOrphans()
	if _, err := os.Stat(orphan.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the orphan's directory is still there: %v", err)
	}
	if accepts(orphan) {
		t.Error("the orphan server still accepts connections")
	}
	if !accepts(alive) {
		t.Fatal("the server of a live owner was stopped")
	}
}

// TestReapOrphansTrustsNoStalePID: the postmaster.pid of a server that was
// killed names a PID that another process — here a live server — may have
// since; reaping removes the dead server's files without signalling it.
func TestReapOrphansTrustsNoStalePID(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	dead := startToReap(t)
	alive := NewServer(t)
	deadPID, err := postmasterPID(dead.dataDir())
	if err != nil {
		t.Fatal(err)
	}
	alivePID, err := postmasterPID(alive.dataDir())
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dead.dataDir(), "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(deadPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(b), "\n")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(alivePID)+"\n"+rest), 0o600); err != nil {
		t.Fatal(err)
	}
	dead.owner.Close()
	reapOrphans()

	if _, err := os.Stat(dead.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dead server's directory is still there: %v", err)
	}
	if err := syscall.Kill(alivePID, 0); err != nil {
		t.Fatalf("the live server whose PID the stale file named was signalled: %v", err)
	}
	if !accepts(alive) {
		t.Fatal("the live server stopped")
	}
}

// startToReap starts a server that a test then leaves for reapOrphans; its
// Close at the end fails harmlessly once it was reaped.
func startToReap(t *testing.T) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	s, err := StartServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// accepts tells whether s takes TCP connections.
func accepts(s *Server) bool {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port())), time.Second)
	if err == nil {
		conn.Close()
	}
	return err == nil
}
