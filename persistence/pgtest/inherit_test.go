package pgtest

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// TestReapOrphans: a server whose owner process is gone is stopped and its
// directory removed; one whose owner lives is left alone.
func TestReapOrphans(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	orphan, err := StartServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer orphan.Close() // fails (nothing left to stop) once reaped
	alive := NewServer(t)

	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(orphan.dir, ownerFile), []byte(strconv.Itoa(gone.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	reapOrphans()

	if _, err := os.Stat(orphan.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the orphan's directory is still there: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(orphan.Port())), time.Second); err == nil {
		conn.Close()
		t.Error("the orphan server still accepts connections")
	}
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(alive.Port())), time.Second)
	if err != nil {
		t.Fatalf("the live owner's server was stopped: %v", err)
	}
	conn.Close()
}
