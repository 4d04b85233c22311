package main

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/concert/ticketing/loadgen"
)

func TestRunRefusesRemoteTargets(t *testing.T) {
	var stderr strings.Builder
	code := run([]string{"-url", "http://10.1.2.3:8080", "-admin-key", "k", "-quiet"}, io.Discard, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "not a loopback address") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

func TestRunFailsSetupWithoutServer(t *testing.T) {
	var stderr strings.Builder
	// Port 1 on loopback: nothing listens there.
	code := run([]string{"-url", "http://127.0.0.1:1", "-admin-key", "k", "-quiet", "-request-timeout", "2s"}, io.Discard, &stderr)
	if code != exitFailed || !strings.Contains(stderr.String(), "create concert") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-admin-key", "k", "-duration", "5s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.timeout != 5*time.Second+5*time.Minute || o.users != 1000 || o.dates != 100 || o.seats != 50 || o.fans != 10000 {
		t.Errorf("defaults: %+v", o)
	}
	for _, args := range [][]string{
		{"-scenario", "holds"},                   // no admin key
		{"-admin-key", "k", "-scenario", "nope"}, // bad scenario
		{"-admin-key", "k", "-users", "0"},       // no users
		{"-admin-key", "k", "-rate", "-5"},       // negative rate
		{"-admin-key", "k", "-duration", "0s"},   // no duration
		{"-admin-key", "k", "extra"},             // stray argument
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
}

// feed shows the phases of a holds run on b.
func feed(b *bar) {
	for i := int64(100); i <= 300; i += 100 {
		b.update(loadgen.Progress{Phase: "setup", Done: i, Total: 300, Elapsed: time.Duration(i) * time.Millisecond})
	}
	b.update(loadgen.Progress{Phase: "tokens", Done: 300, Total: 300, Elapsed: time.Second})
	b.finish()
	for i := int64(1); i <= 4; i++ {
		b.update(loadgen.Progress{Phase: "holds", Done: 250 * i, Errors: 1, Elapsed: time.Duration(i) * 250 * time.Millisecond})
	}
	b.finish()
}

// TestBarPlainOffTerminal: into a file or a pipe, progress is one plain
// line per phase, without carriage returns or escape codes.
func TestBarPlainOffTerminal(t *testing.T) {
	var out strings.Builder
	b := newBar(&out, false, time.Second)
	if b.tty {
		t.Fatal("a strings.Builder taken for a terminal")
	}
	feed(b)
	got := out.String()
	if strings.ContainsAny(got, "\r\x1b") {
		t.Errorf("carriage return or escape code off a terminal: %q", got)
	}
	want := "concertbench: setup 300/300, errors 0\n" +
		"concertbench: tokens 300/300, errors 0\n" +
		"concertbench: holds 1000, 1000/s, errors 1\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestBarDrawnOnTerminal: on a terminal the live bar is drawn.
func TestBarDrawnOnTerminal(t *testing.T) {
	defer func(f func(io.Writer) bool) { isTerminal = f }(isTerminal)
	isTerminal = func(io.Writer) bool { return true }
	var out strings.Builder
	feed(newBar(&out, false, time.Second))
	if !strings.Contains(out.String(), "\r") || !strings.Contains(out.String(), "holds 1000, 1000/s, errors 1") {
		t.Errorf("no bar drawn: %q", out.String())
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, out := range map[string]io.Writer{"file": f, "pipe": w, "buffer": &strings.Builder{}} {
		if isTerminal(out) {
			t.Errorf("%s taken for a terminal", name)
		}
	}
	if newBar(f, true, time.Second) != nil {
		t.Error("-quiet still shows progress")
	}
}

// TestRunNoCarriageReturnsInFiles runs the tool with stderr a file and no
// -quiet: whatever it prints there has no carriage return.
func TestRunNoCarriageReturnsInFiles(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	code := run([]string{"-url", "http://127.0.0.1:1", "-admin-key", "k", "-request-timeout", "2s"}, io.Discard, f)
	raw, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if code != exitFailed || strings.Contains(string(raw), "\r") {
		t.Errorf("exit %d, stderr %q", code, raw)
	}
}
