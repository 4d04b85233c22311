package chaos_test

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/concert/ticketing/chaos"
	"github.com/concert/ticketing/persistence/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The long run (`make chaos`) sets these; `go test` runs the short one.
var (
	long        = flag.Bool("chaos.long", false, "run the long chaos test (make chaos)")
	seedFlag    = flag.Uint64("chaos.seed", 1, "seed of the kills and the load")
	killsFlag   = flag.Int("chaos.kills", 0, "kills (0: 10 short, 60 long; a cluster 6 and 60)")
	clusterFlag = flag.Bool("chaos.cluster", false, "run the short cluster chaos test too (three node processes, 12-25 s)")
	outFlag     = flag.String("chaos.out", "", "directory for the history and drawings (default: a temporary one, kept on failure)")
	nodesFlag   = flag.Int("chaos.nodes", 3, "nodes of TestClusterKillChaos's cluster")
)

// TestKillNineChaos runs the mixed load against a real concertd, kills it
// with SIGKILL at seeded moments and restarts it, then checks the recorded
// history against the contract's invariants and for linearizability of
// every seat and wallet (package chaos). The verdict does not depend on
// timing: the number of kills is fixed, each kill waits for a seeded number
// of answered requests, and the checks hold for any interleaving of a
// correct server.
func TestKillNineChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("builds, runs and kills a server process")
	}
	runKillChaos(t, 1, 10, 60)
}

// TestClusterKillChaos is TestKillNineChaos against a static cluster of
// -chaos.nodes concertd processes on one database: the clients spread over
// the nodes, each kill hits a seeded node, which is started again on the
// same addresses once the survivors answer. A request a survivor answers
// 503 while it fails over is of unknown outcome, as one cut by the kill.
//
// It runs with `make chaos` (-chaos.long) or -chaos.cluster, not in `make
// test` (three node processes and their failovers cost 12–25 s on the
// shared 2-core machine, and its history depends on timing). It found a
// stale read on seed 3 — a duplicate copy of a grain answering from state
// it recovered before the other copy's last write — which the read fence
// (actors/readfence.go) now prevents.
func TestClusterKillChaos(t *testing.T) {
	if testing.Short() || !(*long || *clusterFlag) {
		t.Skip("builds, runs and kills a cluster of server processes: make chaos, or -chaos.cluster")
	}
	runKillChaos(t, *nodesFlag, 6, 60)
}

// runKillChaos is the kill -9 run on nodes processes with short (or, with
// -chaos.long, long) kills.
func runKillChaos(t *testing.T, nodes, shortKills, longKills int) {
	cfg := chaos.Config{
		Nodes: nodes,
		Seed:  *seedFlag, Faults: shortKills, MinOps: 60, MaxOps: 160,
		Jitter: 30 * time.Millisecond, MaxDown: 200 * time.Millisecond,
		Users: 4, ClientsPerUser: 2, Dates: 3, SeatsPerDate: 20, Price: 300,
		CheckTimeout: time.Minute, Logf: t.Logf,
	}
	if *long {
		cfg.Faults, cfg.MinOps, cfg.MaxOps = longKills, 100, 400
		cfg.Users, cfg.ClientsPerUser, cfg.Dates, cfg.SeatsPerDate = 6, 3, 10, 60
		cfg.CheckTimeout = 5 * time.Minute
	}
	if *killsFlag > 0 {
		cfg.Faults = *killsFlag
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	dir := *outFlag
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "concert-chaos-"); err != nil {
			t.Fatal(err)
		}
	}
	rep := runInDir(ctx, t, cfg, dir)
	t.Log("\n" + rep.Summary())
	if rep.Failed() || *outFlag != "" {
		files, err := rep.Save(dir)
		t.Logf("saved %v (err %v)", files, err)
	}
	if rep.Failed() {
		t.Fatalf("the chaos run found a fault; history, drawings and server log in %s", dir)
	}
	if *outFlag == "" {
		_ = os.RemoveAll(dir)
	}
	// The checker is not blind: the same history with one acknowledged
	// payment undone at the end fails both checks. (Proving a history not
	// linearizable means trying every order, which the long run's
	// histories, with a thousand operations of unknown outcome, can make
	// costly: there only the invariants are checked on it.)
	tampered := rep.Facts.Tampered()
	if inv := chaos.CheckInvariants(tampered); inv.Lost == 0 {
		t.Fatal("a tampered history passed the invariants")
	}
	if !*long {
		if bad := chaos.Check(tampered, cfg.CheckTimeout); len(bad.NotLinear) == 0 {
			t.Fatalf("a tampered history passed the linearizability check:\n%s", bad.Summary())
		}
	}
	if rep.Faults != cfg.Faults {
		t.Fatalf("survived %d kills of %d", rep.Faults, cfg.Faults)
	}
}

// runInDir builds concertd, runs cfg against a fresh database with the
// server's log in dir/concertd.log, and fails the test if the run could not
// be made.
func runInDir(ctx context.Context, t *testing.T, cfg chaos.Config, dir string) *chaos.Report {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := chaos.Build(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "concertd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cfg.Bin, cfg.DatabaseURL, cfg.ServerLog = bin, pgtest.NewDatabaseURL(t), logFile
	rep, err := chaos.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("chaos run: %v (server log: %s)", err, logFile.Name())
	}
	return rep
}
