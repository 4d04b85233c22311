package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestABRefusesBadFlags: ab needs a baseline binary that exists, positive
// rounds and ratio, a known scenario and mode.
func TestABRefusesBadFlags(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{},
		{"-base", filepath.Join(t.TempDir(), "missing")},
		{"-base", self, "-concertd", self, "-rounds", "0"},
		{"-base", self, "-concertd", self, "-want", "-1"},
		{"-base", self, "-concertd", self, "-scenario", "nope"},
		{"-base", self, "-concertd", self, "-mode", "both"},
		{"-base", self, "-concertd", self, "--", "-scenario", "hot-seat"},
		{"-base", self, "-concertd", self, "--", "--modes=open"},
		{"-base", self, "-concertd", self, "--", "-rate", "100"},
		{"-base", self, "-concertd", self, "--", "-in-process"}, // both would be this code
	} {
		var errb strings.Builder
		if code := run(append([]string{"ab"}, args...), &strings.Builder{}, &errb); code != exitUsage {
			t.Errorf("ab %q: exit %d, want %d (%s)", args, code, exitUsage, errb.String())
		}
	}
}

// TestABRunsRoundsAndScores runs one round of a tiny fresh-holds against
// two servers in this process (-in-process after "--", allowed only here, so
// the binaries are only checked to exist) and reads back both reports into
// one verdict; then a second run over the same -report-dir whose every run
// fails to start must not score the first run's reports.
func TestABRunsRoundsAndScores(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL twice")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var out, errb strings.Builder
	code := runABWith([]string{"-base", self, "-concertd", self, "-rounds", "1", "-want", "0.01", "-report-dir", dir, "--",
		"-in-process", "-fresh-duration", "1s", "-fresh-dates", "2", "-fresh-seats", "40", "-fresh-workers", "4"}, &out, &errb, true)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	for _, want := range []string{"1      baseline", "1      new", "× the throughput", "met  fresh-holds closed: throughput ≥ 0.01× the baseline's"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	for _, name := range []string{"round1-baseline.json", "round1-new.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}

	out.Reset()
	code = runABWith([]string{"-base", self, "-concertd", self, "-rounds", "1", "-want", "0.01", "-report-dir", dir, "--",
		"-in-process", "-fresh-duration", "1s", "-fresh-dates", "2", "-fresh-seats", "40", "-fresh-workers", "4",
		"-price", "-5"}, &out, &errb, true)
	if code == exitOK || !strings.Contains(out.String(), "unknown") || strings.Contains(out.String(), "× the throughput") {
		t.Errorf("failed runs: exit %d, and the earlier reports were scored:\n%s", code, out.String())
	}
}
