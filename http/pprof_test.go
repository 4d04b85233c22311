package http

import (
	"bytes"
	"compress/gzip"
	"io"
	"net"
	stdhttp "net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"
)

// TestPprofIsOptInAndGuarded: the profiler is absent unless enabled; with
// an admin key it needs the key; without one it serves loopback clients
// only (app.Test's in-memory connection is not loopback).
func TestPprofIsOptInAndGuarded(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		key  string
		want int
	}{
		{"off by default", Config{AdminKey: "k"}, "k", 404},
		{"key required", Config{AdminKey: "k", Pprof: true}, "", 401},
		{"wrong key", Config{AdminKey: "k", Pprof: true}, "x", 401},
		{"right key, any client", Config{AdminKey: "k", Pprof: true}, "k", 200},
		{"no key, not loopback", Config{Pprof: true}, "", 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Booking = &fakeBooking{}
			req := httptest.NewRequest("GET", "/debug/pprof/cmdline", nil)
			if tc.key != "" {
				req.Header.Set("X-Admin-Key", tc.key)
			}
			res, err := New(tc.cfg).Test(req, -1)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.want)
			}
		})
	}
	t.Run("no key, loopback", func(t *testing.T) {
		app := New(Config{Booking: &fakeBooking{}, Pprof: true})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = app.Listener(ln) }()
		defer func() { _ = app.Shutdown() }()
		// A plain client: the profiler is not part of the API contract.
		client := &stdhttp.Client{Transport: &stdhttp.Transport{}}
		res, err := client.Get("http://" + ln.Addr().String() + "/debug/pprof/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		_, _ = io.Copy(io.Discard, res.Body)
		if res.StatusCode != 200 {
			t.Fatalf("status %d, want 200", res.StatusCode)
		}
	})
}

// TestPprofBlockProfileSamplesWhileAsked: a timed block profile records
// the blocking that happens during it (it was empty while the runtime's
// block sampling was off), and sampling is off again afterwards.
func TestPprofBlockProfileSamplesWhileAsked(t *testing.T) {
	app := New(Config{Booking: &fakeBooking{}, AdminKey: "k", Pprof: true})
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Block once the profile samples (it turns both kinds on together),
		// and end well inside its two seconds. A block is recorded when it
		// ends, so it ends 500ms after sampling starts: the profile's first
		// snapshot is surely taken by then, even on a busy machine.
		for deadline := time.Now().Add(5 * time.Second); runtime.SetMutexProfileFraction(-1) == 0; {
			if time.Now().After(deadline) {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		blockOnChannelForPprofTest(500 * time.Millisecond)
	}()
	req := httptest.NewRequest("GET", "/debug/pprof/block?seconds=2", nil)
	req.Header.Set("X-Admin-Key", "k")
	res, err := app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	<-done
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	zr, err := gzip.NewReader(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	prof, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(prof, []byte("blockOnChannelForPprofTest")) {
		t.Errorf("the block profile (%d bytes) does not show the goroutine blocked during it", len(prof))
	}
	if f := runtime.SetMutexProfileFraction(-1); f != 0 {
		t.Errorf("mutex sampling left at %d after the profile", f)
	}
}

// blockOnChannelForPprofTest blocks on a channel receive for d.
//
//go:noinline
func blockOnChannelForPprofTest(d time.Duration) {
	ch := make(chan struct{})
	go func() { time.Sleep(d); close(ch) }()
	<-ch
}
