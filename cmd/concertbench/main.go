// Command concertbench benchmarks a running concert-ticketing server under
// contention. It creates its own fixture through the API, then runs one
// scenario:
//
//	holds  U users over D dates hold a random seat and cancel it, closed loop
//	       or open loop at -rate holds/s; reports holds/s and latency
//	hot    F fans race for the S seats of one date and the winners pay;
//	       the winners must equal the seats (else OVERSOLD/UNDERSOLD, exit 3)
//
// The server must admit every user at once: start it with ACTIVE_TOKENS at
// least -users (holds) or -fans (hot), plus the tokens earlier runs left
// ACTIVE (they stay so until TOKEN_IDLE_TTL passes without use, across
// restarts). Only loopback targets are accepted unless -allow-remote.
//
// Exit status: 0 done, 1 setup or run failed, 2 bad flags, 3 an invariant
// was broken, 4 the hard time cap was hit.
//
// Example:
//
//	concertbench -url http://127.0.0.1:8080 -admin-key KEY -scenario holds \
//	    -users 1000 -dates 100 -seats 50 -duration 20s
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/concert/ticketing/loadgen"
)

const (
	exitOK        = 0
	exitFailed    = 1
	exitUsage     = 2
	exitViolation = 3
	exitHardCap   = 4
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type options struct {
	url, adminKey, scenario    string
	users, dates, seats        int
	fans, workers              int
	price                      int64
	duration, timeout, reqTime time.Duration
	rate                       float64
	json, quiet, allowRemote   bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("concertbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080", "server URL (loopback only unless -allow-remote)")
	fs.StringVar(&o.adminKey, "admin-key", "", "the server's admin key (X-Admin-Key), to create the concert")
	fs.StringVar(&o.scenario, "scenario", "holds", "holds | hot")
	fs.IntVar(&o.users, "users", 1000, "holds: concurrent users (the server needs ACTIVE_TOKENS >= users)")
	fs.IntVar(&o.dates, "dates", 100, "holds: concert dates; user i works on date i%dates")
	fs.IntVar(&o.seats, "seats", 50, "seats per date")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "holds: length of the run")
	fs.Float64Var(&o.rate, "rate", 0, "holds: open-loop offered rate of hold attempts per second (0: closed loop)")
	fs.IntVar(&o.fans, "fans", 10000, "hot: fans racing for one date (the server needs ACTIVE_TOKENS >= fans)")
	fs.IntVar(&o.workers, "workers", 500, "hot: fans racing at the same moment")
	fs.Int64Var(&o.price, "price", 1000, "seat price in won")
	fs.DurationVar(&o.timeout, "timeout", 0, "hard cap on the whole run, setup included (default: duration + 5m)")
	fs.DurationVar(&o.reqTime, "request-timeout", 10*time.Second, "timeout of one request")
	fs.BoolVar(&o.json, "json", false, "print the result as JSON on stdout (the human report goes to stderr)")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress (a bar on a terminal, else one line per phase)")
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow a target that is not a loopback address")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case o.scenario != "holds" && o.scenario != "hot":
		return o, fmt.Errorf("-scenario must be holds or hot, not %q", o.scenario)
	case o.users <= 0 || o.dates <= 0 || o.seats <= 0 || o.fans <= 0 || o.workers <= 0:
		return o, errors.New("-users, -dates, -seats, -fans and -workers must be positive")
	case o.duration <= 0 || o.reqTime <= 0 || o.timeout < 0:
		return o, errors.New("-duration and -request-timeout must be positive")
	case o.rate < 0:
		return o, errors.New("-rate must be 0 (closed loop) or positive")
	case o.price <= 0:
		return o, errors.New("-price must be positive")
	case o.adminKey == "":
		return o, errors.New("-admin-key is required to create the benchmark's concert")
	}
	if o.timeout == 0 {
		o.timeout = o.duration + 5*time.Minute
	}
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "concertbench:", err)
		}
		return exitUsage
	}
	target, err := loadgen.CheckTarget(o.url, o.allowRemote)
	if err != nil {
		fmt.Fprintln(stderr, "concertbench:", err)
		return exitUsage
	}

	// The hard cap: the context ends the run, and should anything ignore
	// it, the process ends a little later all the same.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	watchdog := time.AfterFunc(o.timeout+30*time.Second, func() {
		fmt.Fprintln(os.Stderr, "concertbench: hard time cap exceeded, exiting")
		os.Exit(exitHardCap)
	})
	defer watchdog.Stop()

	users, dates := o.users, o.dates
	if o.scenario == "hot" {
		users, dates = o.fans, 1
	}
	client := loadgen.NewClient(target, loadgen.ClientOptions{
		AdminKey: o.adminKey,
		MaxConns: max(users, o.workers) + 64,
		Timeout:  o.reqTime,
	})
	defer client.CloseIdle()
	bar := newBar(stderr, o.quiet, o.duration)

	fmt.Fprintf(stderr, "concertbench: %s on %s — machine %s\n", o.scenario, target, loadgen.Machine())
	fx, err := loadgen.Setup(ctx, client, loadgen.SetupConfig{
		Dates: dates, SeatsPerDate: o.seats, Users: users, Price: o.price,
		OnProgress: bar.update,
	})
	bar.finish()
	if err != nil {
		fmt.Fprintln(stderr, "concertbench:", err)
		return exitFailed
	}

	var res *loadgen.Result
	switch o.scenario {
	case "holds":
		res, err = loadgen.RunHolds(ctx, client, fx, loadgen.HoldsConfig{
			Duration: o.duration, Rate: o.rate, OnProgress: bar.update,
		})
	case "hot":
		res, err = loadgen.RunHot(ctx, client, fx, loadgen.HotConfig{
			Workers: o.workers, MaxDuration: o.duration + 2*time.Minute, OnProgress: bar.update,
		})
	}
	bar.finish()
	if res != nil {
		report := stdout
		if o.json {
			report = stderr
		}
		_ = res.WriteReport(report)
		if o.json {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(res)
		}
	}
	switch {
	case ctx.Err() != nil && errors.Is(context.Cause(ctx), context.DeadlineExceeded):
		fmt.Fprintf(stderr, "concertbench: hard time cap %s hit\n", o.timeout)
		return exitHardCap
	case err != nil:
		fmt.Fprintln(stderr, "concertbench:", err)
		return exitFailed
	case !res.OK():
		return exitViolation
	}
	return exitOK
}

// bar shows the progress of each phase on stderr: a live bar when stderr is
// a terminal; otherwise (a file, a pipe) one plain line as each phase ends,
// so that logs get no carriage returns or escape codes. A nil *bar shows
// nothing.
type bar struct {
	mu       sync.Mutex // setup reports from many goroutines
	w        io.Writer
	tty      bool
	duration time.Duration
	phase    string
	last     string                   // the phase's latest description
	pb       *progressbar.ProgressBar // tty only
}

// isTerminal reports whether w is a terminal; a variable for the tests.
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

func newBar(w io.Writer, quiet bool, duration time.Duration) *bar {
	if quiet {
		return nil
	}
	return &bar{w: w, tty: isTerminal(w), duration: duration}
}

func (b *bar) update(p loadgen.Progress) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.Phase != b.phase {
		b.finishLocked()
		b.phase = p.Phase
		if b.tty {
			total := p.Total
			if p.Phase == "holds" {
				total = b.duration.Milliseconds()
			}
			b.pb = progressbar.NewOptions64(total,
				progressbar.OptionSetWriter(b.w),
				progressbar.OptionSetDescription(p.Phase),
				progressbar.OptionSetWidth(30),
				progressbar.OptionThrottle(200*time.Millisecond),
				progressbar.OptionSetElapsedTime(true),
				progressbar.OptionSetPredictTime(false),
			)
		}
	}
	switch p.Phase {
	case "holds":
		b.last = fmt.Sprintf("holds %d, %.0f/s, errors %d", p.Done, float64(p.Done)/max(p.Elapsed.Seconds(), 0.001), p.Errors)
		if b.pb != nil {
			_ = b.pb.Set64(min(p.Elapsed.Milliseconds(), b.duration.Milliseconds()))
		}
	default:
		b.last = fmt.Sprintf("%s %d/%d, errors %d", p.Phase, p.Done, p.Total, p.Errors)
		if b.pb != nil {
			_ = b.pb.Set64(p.Done)
		}
	}
	if b.pb != nil {
		b.pb.Describe(b.last)
	}
}

func (b *bar) finish() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.finishLocked()
}

func (b *bar) finishLocked() {
	switch {
	case b.pb != nil:
		_ = b.pb.Finish()
		fmt.Fprintln(b.w)
	case b.phase != "":
		fmt.Fprintf(b.w, "concertbench: %s\n", b.last)
	}
	b.pb, b.phase, b.last = nil, "", ""
}
