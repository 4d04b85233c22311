package http

import (
	"io"
	"net"
	stdhttp "net/http"
	"net/http/httptest"
	"testing"
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
