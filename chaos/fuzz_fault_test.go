package chaos_test

import (
	"context"
	"flag"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
)

var fuzzTime = flag.Duration("chaos.fuzztime", 3*time.Second, "how long TestShortFuzzRuns runs each fuzz target")

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

var execsLine = regexp.MustCompile(`execs: (\d+) `)

// TestShortFuzzRuns runs `go test -fuzz` on every fuzz target for
// -chaos.fuzztime (3 s) each — minimizing a new input at most 10 runs, as
// the end-to-end targets take a millisecond a run — and fails with the
// fuzzer's report if it
// finds a failing input (which it then saves under the package's
// testdata/fuzz, where the next `go test` replays it).
func TestShortFuzzRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the fuzzing engine")
	}
	total := 0
	for _, ft := range fuzzTargets {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, "go", "test", ft.pkg, "-run", "^$", "-fuzz", "^"+ft.name+"$",
			"-fuzztime", fuzzTime.String(), "-fuzzminimizetime", "10x", "-parallel", "2")
		// At the deadline, stop go, the test binary and its fuzzing workers
		// together (a process group), and stop waiting for their output
		// soon after, whoever still holds it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 10 * time.Second
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%s: %v\n%s", ft.name, err, out)
		}
		n := 0
		for _, m := range execsLine.FindAllSubmatch(out, -1) {
			n, _ = strconv.Atoi(string(m[1]))
		}
		total += n
		t.Logf("%s: %d executions, no failure", ft.name, n)
	}
	t.Logf("%d fuzz executions in all", total)
}
