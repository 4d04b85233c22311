package chaos_test

import (
	"context"
	"testing"
	"time"

	"github.com/concert/ticketing/chaos"
)

// TestCheckHoldLimitSeesAViolation: the checker is not blind: three holds
// of one user answered 200 and never ended break a limit of 2, and a read
// of a third HELD beside two live ones does too; two do not.
func TestCheckHoldLimitSeesAViolation(t *testing.T) {
	hold := func(id int, res int64, call, ret int64) *chaos.Op {
		return &chaos.Op{ID: id, Kind: chaos.KindHold, User: 1, Outcome: chaos.OK, ResID: res, ResStatus: "HELD", Call: call, Return: ret}
	}
	two := []*chaos.Op{hold(1, 11, 0, 10), hold(2, 12, 5, 20),
		{ID: 3, Kind: chaos.KindCancel, User: 1, Res: 11, Outcome: chaos.Unknown, Call: 30, Return: 40},
		hold(4, 13, 35, 50)}
	if bad := chaos.CheckHoldLimit(two, 2); len(bad) != 0 {
		t.Fatalf("a correct history fails: %v", bad)
	}
	three := append(two[:2:2], hold(5, 13, 21, 25))
	if bad := chaos.CheckHoldLimit(three, 2); len(bad) == 0 {
		t.Fatal("three live holds pass a limit of 2")
	}
	read := append(two[:2:2], &chaos.Op{ID: 6, Kind: chaos.KindReservation, User: 1, Res: 14, Outcome: chaos.OK, ResStatus: "HELD", Call: 25, Return: 26})
	if bad := chaos.CheckHoldLimit(read, 2); len(bad) == 0 {
		t.Fatal("a third hold read HELD beside two live ones passes a limit of 2")
	}
}

// TestKillChaosWithHoldLimit is the kill -9 run with the hold limit in
// play (HOLD_LIMIT=2; the other runs set 1000): every HOLD_LIMIT refusal
// must be linearizable as a change of nothing (the seat model), and the
// history must never prove a user holding more than 2 seats at once.
func TestKillChaosWithHoldLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds, runs and kills a server process")
	}
	const limit = 2
	cfg := chaos.Config{
		Nodes: 1, Seed: *seedFlag, Faults: 8, MinOps: 60, MaxOps: 160,
		Jitter: 30 * time.Millisecond, MaxDown: 200 * time.Millisecond,
		Users: 4, ClientsPerUser: 3, Dates: 3, SeatsPerDate: 20, Price: 300,
		CheckTimeout: time.Minute, Logf: t.Logf, Settings: []string{"HOLD_LIMIT=2"},
	}
	if *clusterFlag {
		cfg.Nodes = *nodesFlag
	}
	if *killsFlag > 0 {
		cfg.Faults = *killsFlag
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir := *outFlag
	if dir == "" {
		dir = t.TempDir()
	}
	rep := runInDir(ctx, t, cfg, dir)
	t.Log("\n" + rep.Summary())
	limited := 0
	for _, o := range rep.Facts.Ops {
		if o.Code == "HOLD_LIMIT" {
			limited++
		}
	}
	t.Logf("%d holds refused HOLD_LIMIT", limited)
	bad := chaos.CheckHoldLimit(rep.Facts.Ops, limit)
	for _, b := range bad {
		t.Errorf("hold limit: %s", b)
	}
	if rep.Failed() || len(bad) > 0 {
		files, err := rep.Save(dir)
		t.Fatalf("the run found a fault; saved %v (err %v)", files, err)
	}
}
