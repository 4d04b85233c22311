// Command concertbench is the contention benchmark of the concert-ticketing
// server. It drives a running server over its public HTTP API, checks the
// contract's invariants after every scenario, and measures in the same run
// the ceilings the figures should be read against.
//
// Usage:
//
//	concertbench [flags]                      run scenarios against -url
//	concertbench self [flags]                 start a throwaway PostgreSQL and a
//	                                          concertd, run against them, stop both
//	concertbench compare OLD.json NEW.json    two reports side by side
//	concertbench ab -base OLD_BINARY [flags] [-- self flags]
//	                                          one scenario against an older
//	                                          server binary and this one, in
//	                                          alternating rounds: the ratio
//	concertbench html REPORT.json OUT.html    draw the HTML report of a JSON report
//
// Scenarios (-scenario, comma-separated, or all; each creates its own
// fixture through the API and ends with a verdict):
//
//	hot-seat      F fans try the one seat of a date (or N seats) at once:
//	              exactly one wins each seat, all others get 409
//	              SEAT_UNAVAILABLE
//	sold-out      F fans race for every seat of D dates × S seats and pay:
//	              holds = payments = seats, none sold twice, nothing left
//	holds         U users hold a random seat and cancel it, for -duration:
//	              the sustained hold rate; every seat free again at the end
//	wallet-storm  concurrent charges and payments on a few wallets: every
//	              balance exact, money conserved, never negative
//	journey       token → wait until ACTIVE → dates → seats → charge → hold →
//	              pay, with think time: seats sold = payments = debits
//	fresh-holds   C clients hold a new seat each time, never cancelled nor
//	              paid, for -fresh-duration: durable holds/s and the
//	              server's CPU per hold; every 200 shows as held
//	queue-surge   N token requests: one token per user, FIFO admission, the
//	              active count never above ACTIVE_TOKENS (run it last: it
//	              leaves a line of waiting tokens behind)
//	hot           the older on-sale: F fans race for the S seats of one date
//
// Each runs closed loop (everyone at once) and open loop (arrivals at a fixed
// rate, latency from each intended send time; by default half the closed
// loop's throughput measured just before), as -modes says.
//
// The ceilings: (a) raw durable writes of the server's PostgreSQL
// (-database-url), (b) GET /healthz of the server, (c) the generator against
// a trivial in-process server. The results go to the terminal, -report-json
// and -html.
//
// The server must admit every user of a scenario at once: tokens stay
// ACTIVE until TOKEN_IDLE_TTL passes without use, also across restarts, so
// ACTIVE_TOKENS must cover the scenarios of earlier runs too; the tool says
// so when the server keeps tokens waiting. Only loopback targets are
// accepted unless -allow-remote.
//
// Exit status: 0 done, 1 a scenario could not run, 2 bad flags, 3 an
// invariant was broken, 4 the hard time cap was hit.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

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

// allScenarios is the order of -scenario all: queue-surge last, since it
// leaves waiting tokens in line (a scenario after it could not make its
// users' tokens ACTIVE); fresh-holds just before it, since it leaves the
// most behind — tens of thousands of users with live tokens and hold
// slots, and their holds, all kept until HOLD_TTL — which the collector of
// every later scenario's server would mark.
var allScenarios = []string{"hot-seat", "sold-out", "holds", "wallet-storm", "journey", "fresh-holds", "queue-surge"}

var knownScenarios = append([]string{"hot"}, allScenarios...)

type options struct {
	urls                       []string
	adminKey                   string
	scenarios, modes           []string
	users, dates, seats        int
	fans, workers              int
	hotSeatSeats               int
	soldOutFans, soldOutDates  int
	soldOutWorkers             int
	wallets, walletWorkers     int
	freshWorkers, freshPerUser int
	freshDates, freshSeats     int
	freshDuration              time.Duration
	walletDuration             time.Duration
	surgeUsers, surgeWorkers   int
	journeyFans                int
	think                      time.Duration
	scale                      float64
	price                      int64
	duration, timeout, reqTime time.Duration
	rate                       float64
	activeTokens               int
	databaseURL                string
	ceilingTime                time.Duration
	noCeilings                 bool
	reportJSON, html           string
	settings                   map[string]string
	settingsFrom               string
	cpuProfile                 string
	inProcess                  bool
	json, quiet, allowRemote   bool
}

func (o *options) scaled(n int) int { return max(1, int(float64(n)*o.scale+0.5)) }

// defineFlags adds the run's flags to fs.
func defineFlags(fs *flag.FlagSet, o *options) (urls, scenarios, modes *string, settings *settingsFlag) {
	urls = fs.String("url", "http://127.0.0.1:8080", "server base URL; several, comma-separated, spread the requests (a user's always to the same one); loopback only unless -allow-remote")
	fs.StringVar(&o.adminKey, "admin-key", "", "the server's admin key (X-Admin-Key), to create the scenarios' concerts")
	scenarios = fs.String("scenario", "all", "comma-separated: "+strings.Join(knownScenarios, ", ")+"; or all")
	modes = fs.String("modes", "closed,open", "closed, open, or both (open-only runs at -rate)")
	fs.Float64Var(&o.rate, "rate", 0, "open-loop arrival rate per second (0: half the closed loop's throughput of the same scenario)")
	fs.Float64Var(&o.scale, "scale", 1, "multiply every scenario's fans, users and sold-out dates by this (e.g. 0.1 for a quick run)")
	fs.IntVar(&o.fans, "fans", 10000, "hot-seat (and hot): fans")
	fs.IntVar(&o.hotSeatSeats, "hot-seat-seats", 1, "hot-seat: seats of the date the fans share, fan i trying seat i%N, at most 1,000 and at least two fans a seat (issue 8's bursts: 1,000 fans on 1 seat, 3,000 over 50); not scaled by -scale")
	fs.IntVar(&o.soldOutFans, "sold-out-fans", 20000, "sold-out: fans")
	fs.IntVar(&o.soldOutDates, "sold-out-dates", 100, "sold-out: dates")
	fs.IntVar(&o.soldOutWorkers, "sold-out-workers", 1000, "sold-out: fans in flight at once in closed loop")
	fs.IntVar(&o.seats, "seats", 50, "seats per date (sold-out, holds, hot)")
	fs.IntVar(&o.users, "users", 1000, "holds: concurrent users")
	fs.IntVar(&o.dates, "dates", 100, "holds: concert dates; user i works on date i%dates")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "holds: length of each run")
	fs.IntVar(&o.freshWorkers, "fresh-workers", 64, "fresh-holds: clients in closed loop, each holding a new seat as soon as its last hold is answered")
	fs.DurationVar(&o.freshDuration, "fresh-duration", 30*time.Second, "fresh-holds: length of each run (shorter if every seat is tried); keep it under the server's HOLD_TTL (5 minutes by default), or holds expire before the check")
	fs.IntVar(&o.freshDates, "fresh-dates", 366, "fresh-holds: concert dates set up before the load (at most 366, the API's limit per concert; not scaled by -scale: the stock follows -fresh-duration)")
	fs.IntVar(&o.freshSeats, "fresh-seats", 0, "fresh-holds: seats per date, at most 1,000 (0: enough for -fresh-duration at 12,000 holds/s); a run that tries every seat ends early, with a note")
	fs.IntVar(&o.freshPerUser, "fresh-per-user", 4, "fresh-holds: holds one user makes before its client takes the next user; at most the server's HOLD_LIMIT (4 by default)")
	fs.IntVar(&o.wallets, "wallets", 8, "wallet-storm: wallets")
	fs.IntVar(&o.walletWorkers, "wallet-workers", 64, "wallet-storm: concurrent clients in closed loop")
	fs.DurationVar(&o.walletDuration, "wallet-duration", 10*time.Second, "wallet-storm: length of each run")
	fs.IntVar(&o.journeyFans, "journey-fans", 1000, "journey: fans")
	fs.DurationVar(&o.think, "think", 100*time.Millisecond, "journey: a fan's mean pause between two steps")
	fs.IntVar(&o.surgeUsers, "surge-users", 100000, "queue-surge: users asking for a token")
	fs.IntVar(&o.surgeWorkers, "surge-workers", 512, "queue-surge: requests in flight in closed loop")
	fs.IntVar(&o.workers, "workers", 500, "hot: fans racing at the same moment")
	fs.Int64Var(&o.price, "price", 1000, "seat price in won")
	fs.IntVar(&o.activeTokens, "active-tokens", 0, "the server's ACTIVE_TOKENS, if known: scenarios then refuse at once when it is too small")
	fs.StringVar(&o.databaseURL, "database-url", "", "the server's PostgreSQL, for the raw durable-write ceiling (a); a scratch table is created and dropped")
	fs.DurationVar(&o.ceilingTime, "ceiling-duration", 2*time.Second, "length of the HTTP and generator ceilings (b, c); PostgreSQL's (a) takes 1 s per batch size")
	fs.BoolVar(&o.noCeilings, "no-ceilings", false, "skip the ceilings")
	fs.StringVar(&o.reportJSON, "report-json", "", "write the full report as JSON to this file")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this process for each run's load phase to PREFIX-<scenario>-<mode>.pprof (with self -in-process it profiles the server too)")
	fs.StringVar(&o.html, "html", "", "write the self-contained HTML report to this file")
	settings = &settingsFlag{}
	fs.Var(settings, "server-setting", "KEY=VALUE of the server's settings, recorded in the report (repeatable)")
	fs.DurationVar(&o.timeout, "timeout", 0, "hard cap on the whole run, set-up included (default: 30m)")
	fs.DurationVar(&o.reqTime, "request-timeout", 10*time.Second, "timeout of one request")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON on stdout (the human report goes to stderr)")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress (a bar on a terminal, else one line per phase)")
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow a target that is not a loopback address")
	return urls, scenarios, modes, settings
}

// settingsFlag collects KEY=VALUE pairs.
type settingsFlag map[string]string

func (s *settingsFlag) String() string { return "" }
func (s *settingsFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	if *s == nil {
		*s = map[string]string{}
	}
	(*s)[k] = val
	return nil
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("concertbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	urls, scenarios, modes, settings := defineFlags(fs, &o)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return o, o.finish(*urls, *scenarios, *modes, *settings)
}

// finish validates o and fills what the flags imply.
func (o *options) finish(urls, scenarios, modes string, settings settingsFlag) error {
	o.settings = settings
	for _, u := range strings.Split(urls, ",") {
		if u = strings.TrimSpace(u); u != "" {
			o.urls = append(o.urls, u)
		}
	}
	o.scenarios = nil
	for _, s := range strings.Split(scenarios, ",") {
		s = strings.TrimSpace(s)
		switch {
		case s == "all":
			o.scenarios = append(o.scenarios, allScenarios...)
		case contains(knownScenarios, s):
			o.scenarios = append(o.scenarios, s)
		default:
			return fmt.Errorf("-scenario: unknown %q (want %s or all)", s, strings.Join(knownScenarios, ", "))
		}
	}
	o.modes = nil
	for _, m := range strings.Split(modes, ",") {
		m = strings.TrimSpace(m)
		if m != "closed" && m != "open" {
			return fmt.Errorf("-modes: want closed, open or closed,open, not %q", m)
		}
		if !contains(o.modes, m) {
			o.modes = append(o.modes, m)
		}
	}
	switch {
	case len(o.urls) == 0:
		return errors.New("-url: no URL")
	case len(o.scenarios) == 0:
		return errors.New("-scenario: none")
	case o.users <= 0 || o.dates <= 0 || o.seats <= 0 || o.fans <= 0 || o.hotSeatSeats <= 0 || o.workers <= 0 ||
		o.soldOutFans <= 0 || o.soldOutDates <= 0 || o.soldOutWorkers <= 0 || o.wallets <= 0 ||
		o.walletWorkers <= 0 || o.surgeUsers <= 0 || o.surgeWorkers <= 0 || o.journeyFans <= 0 ||
		o.freshWorkers <= 0 || o.freshPerUser <= 0 || o.freshDates <= 0 || o.freshSeats < 0:
		return errors.New("every count (-users, -dates, -seats, -fans, -workers, ...) must be positive")
	case o.hotSeatSeats > 1000:
		return errors.New("-hot-seat-seats must be at most 1,000 (the API's seats per date)")
	case o.freshDates > 366 || o.freshSeats > 1000:
		return errors.New("-fresh-dates must be at most 366 and -fresh-seats at most 1,000 (the API's limits for one concert)")
	case o.duration <= 0 || o.walletDuration <= 0 || o.freshDuration <= 0 || o.reqTime <= 0 || o.timeout < 0 || o.ceilingTime <= 0:
		return errors.New("-duration, -wallet-duration, -fresh-duration, -request-timeout and -ceiling-duration must be positive")
	case o.think < 0:
		return errors.New("-think must not be negative")
	case o.rate < 0:
		return errors.New("-rate must be 0 (half the closed loop's) or positive")
	case o.scale <= 0:
		return errors.New("-scale must be positive")
	case o.price <= 0:
		return errors.New("-price must be positive")
	case o.adminKey == "":
		return errors.New("-admin-key is required to create the benchmark's concerts")
	case len(o.modes) == 1 && o.modes[0] == "open" && o.rate == 0:
		return errors.New("-modes open alone needs -rate (there is no closed loop to take half of)")
	}
	if o.timeout == 0 {
		o.timeout = 30 * time.Minute
		if contains(o.scenarios, "holds") && len(o.scenarios) == 1 {
			o.timeout = 2*o.duration + 5*time.Minute
		}
	}
	return nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "compare":
			return runCompare(args[1:], stdout, stderr)
		case "ab":
			return runAB(args[1:], stdout, stderr)
		case "html":
			return runHTML(args[1:], stderr)
		case "self":
			return runSelf(args[1:], stdout, stderr)
		}
	}
	o, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "concertbench:", err)
		}
		return exitUsage
	}
	var targets []*url.URL
	for _, u := range o.urls {
		t, err := loadgen.CheckTarget(u, o.allowRemote)
		if err != nil {
			fmt.Fprintln(stderr, "concertbench:", err)
			return exitUsage
		}
		targets = append(targets, t)
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

	rep := runSuite(ctx, o, targets, stderr, strings.Join(append([]string{"concertbench"}, args...), " "))
	return finishReport(ctx, o, rep, stdout, stderr)
}

// finishReport writes the report everywhere it should go and returns the
// exit status it calls for.
func finishReport(ctx context.Context, o options, rep *loadgen.Report, stdout, stderr io.Writer) int {
	table := stdout
	if o.json {
		table = stderr
	}
	fmt.Fprintln(table)
	_ = rep.WriteTable(table)
	if o.json {
		_ = rep.WriteJSON(stdout)
	}
	status := exitOK
	if o.reportJSON != "" {
		if err := writeFile(o.reportJSON, rep.WriteJSON); err != nil {
			fmt.Fprintln(stderr, "concertbench:", err)
			status = exitFailed
		} else {
			fmt.Fprintf(stderr, "concertbench: report written to %s\n", o.reportJSON)
		}
	}
	if o.html != "" {
		if err := writeFile(o.html, rep.WriteHTML); err != nil {
			fmt.Fprintln(stderr, "concertbench:", err)
			status = exitFailed
		} else {
			fmt.Fprintf(stderr, "concertbench: HTML report written to %s\n", o.html)
		}
	}
	switch {
	case ctx.Err() != nil && errors.Is(context.Cause(ctx), context.DeadlineExceeded):
		fmt.Fprintf(stderr, "concertbench: hard time cap %s hit\n", o.timeout)
		return exitHardCap
	case !rep.OK() && hasViolation(rep):
		return exitViolation
	case len(rep.Failures) > 0:
		return exitFailed
	}
	return status
}

func hasViolation(rep *loadgen.Report) bool {
	for _, r := range rep.Results {
		if !r.OK() {
			return true
		}
	}
	return false
}

func writeFile(path string, write func(io.Writer) error) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

func runCompare(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "usage: concertbench compare OLD.json NEW.json")
		return exitUsage
	}
	old, err := loadgen.ReadReport(args[0])
	if err != nil {
		fmt.Fprintln(stderr, "concertbench:", err)
		return exitFailed
	}
	cur, err := loadgen.ReadReport(args[1])
	if err != nil {
		fmt.Fprintln(stderr, "concertbench:", err)
		return exitFailed
	}
	if err := loadgen.WriteComparison(stdout, old, cur, args[0], args[1]); err != nil {
		fmt.Fprintln(stderr, "concertbench:", err)
		return exitFailed
	}
	return exitOK
}

func runHTML(args []string, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "usage: concertbench html REPORT.json OUT.html")
		return exitUsage
	}
	rep, err := loadgen.ReadReport(args[0])
	if err != nil {
		fmt.Fprintln(stderr, "concertbench:", err)
		return exitFailed
	}
	if err := writeFile(args[1], rep.WriteHTML); err != nil {
		fmt.Fprintln(stderr, "concertbench:", err)
		return exitFailed
	}
	return exitOK
}
