package main

import (
	"io"
	"os"
	"path/filepath"
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
	code := run([]string{"-url", "http://127.0.0.1:1", "-admin-key", "k", "-quiet", "-request-timeout", "2s",
		"-scenario", "hot-seat,holds", "-no-ceilings"}, io.Discard, &stderr)
	if code != exitFailed || !strings.Contains(stderr.String(), "hot-seat closed: setup: create concert") ||
		!strings.Contains(stderr.String(), "holds closed: setup: create concert") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-admin-key", "k", "-duration", "5s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.timeout != 30*time.Minute || o.users != 1000 || o.dates != 100 || o.seats != 50 || o.fans != 10000 ||
		o.soldOutFans != 20000 || o.surgeUsers != 100000 || o.wallets != 8 || o.journeyFans != 1000 ||
		strings.Join(o.scenarios, ",") != "hot-seat,sold-out,holds,wallet-storm,journey,fresh-holds,queue-surge" ||
		o.freshWorkers != 64 || o.freshDuration != 30*time.Second || o.freshDates != 366 || o.freshSeats != 0 || o.freshPerUser != 4 ||
		strings.Join(o.modes, ",") != "closed,open" || len(o.urls) != 1 {
		t.Errorf("defaults: %+v", o)
	}
	o, err = parseFlags([]string{"-admin-key", "k", "-scenario", "holds", "-duration", "5s", "-url", "http://127.0.0.1:1, http://127.0.0.1:2",
		"-modes", "open", "-rate", "100", "-server-setting", "ACTIVE_TOKENS=5000"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.timeout != 2*5*time.Second+5*time.Minute || len(o.urls) != 2 || o.modes[0] != "open" || o.settings["ACTIVE_TOKENS"] != "5000" {
		t.Errorf("holds alone: %+v", o)
	}
	for _, args := range [][]string{
		{"-scenario", "holds"},                   // no admin key
		{"-admin-key", "k", "-scenario", "nope"}, // bad scenario
		{"-admin-key", "k", "-users", "0"},       // no users
		{"-admin-key", "k", "-rate", "-5"},       // negative rate
		{"-admin-key", "k", "-duration", "0s"},   // no duration
		{"-admin-key", "k", "extra"},             // stray argument
		{"-admin-key", "k", "-modes", "sideways"},
		{"-admin-key", "k", "-modes", "open"}, // open alone without -rate
		{"-admin-key", "k", "-scale", "0"},
		{"-admin-key", "k", "-surge-users", "0"},
		{"-admin-key", "k", "-think", "-1s"},
		{"-admin-key", "k", "-server-setting", "novalue"},
		{"-admin-key", "k", "-url", ""},
		{"-admin-key", "k", "-fresh-workers", "0"},
		{"-admin-key", "k", "-fresh-duration", "0s"},
		{"-admin-key", "k", "-fresh-per-user", "0"},
		{"-admin-key", "k", "-fresh-dates", "367"}, // the API's limit per concert
		{"-admin-key", "k", "-fresh-seats", "1001"},
		{"-admin-key", "k", "-hot-seat-seats", "0"},
		{"-admin-key", "k", "-hot-seat-seats", "1001"}, // the API's seats per date
		{"-admin-key", "k", "-fresh-seats", "-1"},
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
	code := run([]string{"-url", "http://127.0.0.1:1", "-admin-key", "k", "-request-timeout", "2s", "-scenario", "holds", "-no-ceilings"}, io.Discard, f)
	raw, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if code != exitFailed || strings.Contains(string(raw), "\r") {
		t.Errorf("exit %d, stderr %q", code, raw)
	}
}

func TestTokensNeeded(t *testing.T) {
	o, err := parseFlags([]string{"-admin-key", "k"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// fresh-holds: 366 dates of 984 seats (30 s at 12,000 holds/s), a
	// user per 4 seats and one more per client.
	fresh := (366*984+3)/4 + 64
	// hot-seat 10,000 and sold-out 20,000 in both modes, holds 1,000
	// once, fresh-holds, 8 wallets, journey 1,000 twice, 2,000 of the
	// surge, 100.
	if got, want := o.tokensNeeded(), 2*10000+2*20000+1000+2*fresh+2*8+2*1000+2000+100; got != want {
		t.Errorf("tokensNeeded = %d, want %d", got, want)
	}
	// -scale leaves fresh-holds alone: its stock follows -fresh-duration.
	o.scale, o.modes = 0.1, []string{"closed"}
	if got, want := o.tokensNeeded(), 1000+2000+100+fresh+8+100+1000+100; got != want {
		t.Errorf("scaled: tokensNeeded = %d, want %d", got, want)
	}
	o.freshDuration, o.freshPerUser = 10*time.Second, 2 // 366 dates of 328 seats
	if got, want := o.tokensNeeded(), 1000+2000+100+(366*328+1)/2+64+8+100+1000+100; got != want {
		t.Errorf("10 s of fresh-holds, 2 a user: tokensNeeded = %d, want %d", got, want)
	}
}

// TestCompareAndHTMLSubcommands runs compare and html on two reports.
func TestCompareAndHTMLSubcommands(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, thr float64) string {
		rep := &loadgen.Report{Tool: "concertbench", Machine: loadgen.DescribeMachine(), Results: []*loadgen.Result{
			{Scenario: "hot-seat", Mode: "closed", Throughput: thr, ThroughputUnit: "answers/s", RequestsPerSec: thr},
		}}
		path := filepath.Join(dir, name)
		if err := writeFile(path, rep.WriteJSON); err != nil {
			t.Fatal(err)
		}
		return path
	}
	a, b := write("a.json", 1000), write("sub/b.json", 1500)
	var out, errb strings.Builder
	if code := run([]string{"compare", a, b}, &out, &errb); code != exitOK {
		t.Fatalf("compare: exit %d, %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "+50.0 % better") {
		t.Errorf("compare output:\n%s", out.String())
	}
	html := filepath.Join(dir, "r.html")
	if code := run([]string{"html", b, html}, &out, &errb); code != exitOK {
		t.Fatalf("html: exit %d, %s", code, errb.String())
	}
	page, err := os.ReadFile(html)
	if err != nil || !strings.Contains(string(page), "hot-seat closed") {
		t.Errorf("html page: %v %.200s", err, page)
	}
	if code := run([]string{"compare", a}, &out, &errb); code != exitUsage {
		t.Errorf("compare with one file: exit %d", code)
	}
	if code := run([]string{"compare", a, filepath.Join(dir, "missing.json")}, &out, &errb); code != exitFailed {
		t.Errorf("compare with a missing file: exit %d", code)
	}
}
