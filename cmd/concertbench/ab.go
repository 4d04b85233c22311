package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/concert/ticketing/loadgen"
)

// runAB is `concertbench ab`: the same scenario run against a baseline
// binary (an older commit's concertd) and the binary under test, back to
// back, round after round, each run a `concertbench self` of its own (a
// fresh PostgreSQL and server), and scored as the ratio of their
// throughputs. Rounds alternate which binary goes first (ABBA), so a
// machine that drifts during the run favours neither. Flags after "--" go
// to every self run (e.g. -fresh-duration 10s). Closed loop only: in open
// loop both binaries make the offered rate and the ratio says nothing.
func runAB(args []string, stdout, stderr io.Writer) int {
	return runABWith(args, stdout, stderr, false)
}

// runABWith is runAB; inProcessOK lets a test pass -in-process to the self
// runs (both "binaries" are then this code: plumbing, not a comparison).
func runABWith(args []string, stdout, stderr io.Writer, inProcessOK bool) int {
	fs := flag.NewFlagSet("concertbench ab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("base", "", "the baseline server binary (required; make bench-ab BASE=<commit> builds one)")
	concertd := fs.String("concertd", "bin/concertd", "the server binary under test")
	rounds := fs.Int("rounds", 2, "rounds, each one run of each binary")
	want := fs.Float64("want", 4, "the throughput ratio the target asks for (issue 8: 4× the landed version's holds/s)")
	scenario := fs.String("scenario", "fresh-holds", "the one scenario to run")
	reportDir := fs.String("report-dir", "", "keep each run's JSON report here (default: a temporary directory, removed at the end)")
	if err := fs.Parse(args); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "concertbench ab:", err)
		}
		return exitUsage
	}
	switch {
	case *base == "":
		fmt.Fprintln(stderr, "concertbench ab: -base is required")
		return exitUsage
	case *rounds < 1 || *want <= 0:
		fmt.Fprintln(stderr, "concertbench ab: -rounds and -want must be positive")
		return exitUsage
	case !contains(knownScenarios, *scenario):
		fmt.Fprintf(stderr, "concertbench ab: unknown scenario %q\n", *scenario)
		return exitUsage
	}
	// The self flags ab sets for each run: given after "--" they would
	// override it (the last flag wins), and the run would not be the one
	// ab reads back.
	abOwnSelfFlags := []string{"concertd", "scenario", "modes", "report-json", "rate"}
	if !inProcessOK {
		abOwnSelfFlags = append(abOwnSelfFlags, "in-process")
	}
	for _, a := range fs.Args() {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && contains(abOwnSelfFlags, name) {
			fmt.Fprintf(stderr, "concertbench ab: %s after \"--\": ab sets it for every run (use ab's -scenario, -concertd, -base, -report-dir)\n", a)
			return exitUsage
		}
	}
	for _, bin := range []string{*base, *concertd} {
		if _, err := os.Stat(bin); err != nil {
			fmt.Fprintf(stderr, "concertbench ab: server binary: %v\n", err)
			return exitUsage
		}
	}
	dir := *reportDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "concertbench-ab-*")
		if err != nil {
			fmt.Fprintln(stderr, "concertbench ab:", err)
			return exitFailed
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(stderr, "concertbench ab:", err)
		return exitFailed
	}

	// An interrupt ends the run under way (self watches for it too) and
	// every run after it.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// one runs the scenario once against bin. A run that fails (a broken
	// invariant aside, which the verdict shows) leaves its pair without
	// that result — a report it wrote is partial, and an older one in
	// -report-dir is not this run's — and the worst exit status is
	// returned.
	status := exitOK
	one := func(round int, name, bin string) *loadgen.Result {
		if ctx.Err() != nil {
			return nil
		}
		path := filepath.Join(dir, fmt.Sprintf("round%d-%s.json", round, name))
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintln(stderr, "concertbench ab:", err)
			status = max(status, exitFailed)
			return nil
		}
		fmt.Fprintf(stderr, "concertbench ab: round %d, %s (%s)\n", round, name, bin)
		selfArgs := append([]string{"-concertd", bin, "-scenario", *scenario, "-modes", "closed",
			"-no-ceilings", "-restart=false", "-quiet", "-report-json", path}, fs.Args()...)
		code := runSelf(selfArgs, io.Discard, stderr)
		if code != exitOK {
			fmt.Fprintf(stderr, "concertbench ab: round %d, %s: exit %d\n", round, name, code)
			status = max(status, code)
		}
		if code != exitOK && code != exitViolation {
			return nil
		}
		rep, err := loadgen.ReadReport(path)
		if err != nil {
			fmt.Fprintf(stderr, "concertbench ab: round %d, %s: %v\n", round, name, err)
			status = max(status, exitFailed)
			return nil
		}
		r := rep.Find(*scenario, "closed")
		if r == nil {
			fmt.Fprintf(stderr, "concertbench ab: round %d, %s: the report has no %s closed result\n", round, name, *scenario)
			status = max(status, exitFailed)
		}
		return r
	}
	pairs := make([]loadgen.BaselinePair, *rounds)
	for i := range pairs {
		round := i + 1
		if round%2 == 1 {
			pairs[i].Base = one(round, "baseline", *base)
			pairs[i].New = one(round, "new", *concertd)
		} else {
			pairs[i].New = one(round, "new", *concertd)
			pairs[i].Base = one(round, "baseline", *base)
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "concertbench ab: interrupted")
		status = max(status, exitFailed)
	}
	c := loadgen.CompareBaseline(*scenario, "closed", pairs, *want)
	fmt.Fprintln(stdout)
	if err := c.WriteTable(stdout, filepath.Base(*base), filepath.Base(*concertd)); err != nil {
		fmt.Fprintln(stderr, "concertbench ab:", err)
		return exitFailed
	}
	if *reportDir != "" {
		fmt.Fprintf(stderr, "concertbench ab: %d reports in %s\n", 2**rounds, dir)
	}
	return status
}
