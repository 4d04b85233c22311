package chaos_test

import (
	"context"
	"flag"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// fuzzExecs is a count, not a duration: a few seconds on a busy machine
// went entirely to replaying the seed corpus ("gathering baseline
// coverage"), so the run tried no new input and passed all the same.
var fuzzExecs = flag.Int("chaos.fuzzexecs", 500, "new inputs TestShortFuzzRuns tries on each fuzz target, past its corpus")

// fuzzTargets are the project's fuzz targets: every request decoder and
// text field (FuzzClientText), the token parser end to end and in the token
// table, and the Idempotency-Key path end to end and in the wallet. A plain
// `go test` runs their committed seed corpora; this test runs the fuzzing
// engine on each for a few seconds, so `make test` explores new inputs too.
var fuzzTargets = []struct{ pkg, name string }{
	{"github.com/concert/ticketing/http", "FuzzClientText"},
	{"github.com/concert/ticketing/http", "FuzzBearerToken"},
	{"github.com/concert/ticketing/http", "FuzzIdempotencyKeyReplay"},
	{"github.com/concert/ticketing/actors", "FuzzTokenTableCheck"},
	{"github.com/concert/ticketing/actors", "FuzzWalletIdempotencyKey"},
}

var (
	execsLine    = regexp.MustCompile(`execs: (\d+) `)
	baselineLine = regexp.MustCompile(`(?:gathering baseline coverage|testing seed corpus): \d+/(\d+) completed`)
)

// TestShortFuzzRuns runs `go test -fuzz` on every fuzz target for
// -chaos.fuzzexecs (500) new inputs each — minimizing a new input at most 10
// runs, as the end-to-end targets take a millisecond a run — and fails with
// the fuzzer's report if it finds a failing input (which it then saves under
// the package's testdata/fuzz, where the next `go test` replays it), or if
// the fuzzer never got past the seed corpus. A count of executions (-fuzztime
// Nx) includes the corpus's replay, so each target first runs once to learn
// its corpus size (seeds, testdata and the fuzz cache, which grows).
func TestShortFuzzRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the fuzzing engine")
	}
	built := map[string]bool{}
	total := 0
	for _, ft := range fuzzTargets {
		if !built[ft.pkg] {
			if out, err := buildFuzz(t.TempDir(), ft.pkg, ft.name); err != nil {
				t.Fatalf("build %s for fuzzing: %v\n%s", ft.pkg, err, out)
			}
			built[ft.pkg] = true
		}
		out, err := runFuzz(ft.pkg, ft.name, 1)
		if err != nil {
			t.Fatalf("%s: %v\n%s", ft.name, err, out)
		}
		out, err = runFuzz(ft.pkg, ft.name, corpusSize(out)+*fuzzExecs)
		if err != nil {
			t.Fatalf("%s: %v\n%s", ft.name, err, out)
		}
		// The corpus this run replayed (the cache may have grown since).
		corpus, n := corpusSize(out), lastCount(execsLine, out)
		if n <= corpus {
			t.Fatalf("%s: the fuzzer tried no new input (%d executions, corpus %d)\n%s", ft.name, n, corpus, out)
		}
		total += n - corpus
		t.Logf("%s: %d new inputs past a corpus of %d, no failure", ft.name, n-corpus, corpus)
	}
	t.Logf("%d new inputs in all", total)
}

// corpusSize is the size of the corpus a fuzzing run's output says it
// replays first, 0 if none.
func corpusSize(out []byte) int { return lastCount(baselineLine, out) }

// lastCount is the number captured by re's last match in out, 0 if none.
func lastCount(re *regexp.Regexp, out []byte) int {
	n := 0
	for _, m := range re.FindAllSubmatch(out, -1) {
		n, _ = strconv.Atoi(string(m[1]))
	}
	return n
}

// buildFuzz compiles pkg's tests with the fuzzing instrumentation (into
// dir), so that the runs' 5-minute nets time fuzzing, not a cold build: on
// a machine with a fresh build cache and other work (a load average of 7
// on 2 cores) the first run's build alone took over 5 minutes. The
// packages compiled here are what the runs' own builds then find cached.
func buildFuzz(dir, pkg, name string) ([]byte, error) {
	return goCommand(10*time.Minute, "test", "-c", "-o", filepath.Join(dir, "fuzz.test"), "-fuzz", "^"+name+"$", pkg)
}

// runFuzz runs the fuzz target name of pkg for execs executions and returns
// its output, within a 5-minute net (a run takes seconds).
func runFuzz(pkg, name string, execs int) ([]byte, error) {
	return goCommand(5*time.Minute, "test", pkg, "-run", "^$", "-fuzz", "^"+name+"$",
		"-fuzztime", strconv.Itoa(execs)+"x", "-fuzzminimizetime", "10x", "-parallel", "2")
}

// goCommand runs the go command with args and returns its output. After
// net, go, the test binary and its fuzzing workers are killed together (a
// process group), and the wait for their output stops soon after, whoever
// still holds it.
func goCommand(net time.Duration, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), net)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	return cmd.CombinedOutput()
}
