package journaltest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/concert/ticketing/persistence"
)

// recovered is what Recover handed over.
type recovered struct {
	snap   *persistence.Snapshot
	events []persistence.Event
}

func recoverAll(t *testing.T, s Store, actor string) recovered {
	t.Helper()
	var r recovered
	err := s.Recover(ctxT(t), actor, func(snap persistence.Snapshot) error {
		if r.snap != nil || r.events != nil {
			t.Errorf("%s: restore called twice, or after apply", actor)
		}
		r.snap = &snap
		return nil
	}, func(e persistence.Event) error {
		r.events = append(r.events, e)
		return nil
	})
	if err != nil {
		t.Fatalf("recover %s: %v", actor, err)
	}
	return r
}

// recoverSnapshotThenEvents: Recover hands over the snapshot, if any, then
// every event after it in Seq order — across pages (more than 1,000
// events), with and without a snapshot, with pruning — exactly what
// LoadSnapshot and then Replay after its Seq give; an error from restore
// or apply stops it and comes back as is.
func recoverSnapshotThenEvents(t *testing.T, open func(*testing.T, Config) Store) {
	s := open(t, Config{PruneAfterSnapshot: true})
	ctx := ctxT(t)

	if r := recoverAll(t, s, "none"); r.snap != nil || len(r.events) != 0 {
		t.Fatalf("an actor with nothing stored: %+v", r)
	}

	mustAppend(t, s, "ev", events(1, 3, "E"), persistence.ReminderChange{})
	if r := recoverAll(t, s, "ev"); r.snap != nil {
		t.Fatalf("no snapshot stored, got %+v", r.snap)
	} else {
		wantEvents(t, "events only", r.events, events(1, 3, "E"))
	}

	const total = 2300
	for seq := int64(1); seq <= total; seq += 100 {
		mustAppend(t, s, "long", events(seq, seq+99, "E"), persistence.ReminderChange{})
	}
	wantEvents(t, "long, no snapshot", recoverAll(t, s, "long").events, events(1, total, "E"))
	if err := s.SaveSnapshot(ctx, "long", persistence.Snapshot{Seq: 150, Type: "S", Payload: []byte("at-150")}); err != nil {
		t.Fatal(err)
	}
	r := recoverAll(t, s, "long")
	if r.snap == nil || r.snap.Seq != 150 || r.snap.Type != "S" || !bytes.Equal(r.snap.Payload, []byte("at-150")) {
		t.Fatalf("long: snapshot %+v", r.snap)
	}
	wantEvents(t, "long after its snapshot", r.events, events(151, total, "E"))

	mustAppend(t, s, "snap", events(1, 5, "E"), persistence.ReminderChange{})
	for _, seq := range []int64{3, 5} { // the second prunes up to the first
		if err := s.SaveSnapshot(ctx, "snap", persistence.Snapshot{Seq: seq, Type: "S"}); err != nil {
			t.Fatal(err)
		}
	}
	if r := recoverAll(t, s, "snap"); r.snap == nil || r.snap.Seq != 5 || len(r.events) != 0 {
		t.Fatalf("snapshot at the last event: %+v", r)
	}
	mustAppend(t, s, "snap", events(6, 7, "E"), persistence.ReminderChange{})
	r = recoverAll(t, s, "snap")
	if r.snap == nil || r.snap.Seq != 5 {
		t.Fatalf("snap: snapshot %+v", r.snap)
	}
	wantEvents(t, "snap after its snapshot", r.events, events(6, 7, "E"))

	stop := errors.New("stop")
	if err := s.Recover(ctx, "snap", func(persistence.Snapshot) error { return stop },
		func(persistence.Event) error { t.Error("apply after restore failed"); return nil }); !errors.Is(err, stop) {
		t.Fatalf("failing restore: %v", err)
	}
	calls := 0
	if err := s.Recover(ctx, "long", func(persistence.Snapshot) error { return nil },
		func(persistence.Event) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("failing apply: %v after %d calls", err, calls)
	}
}

// recoverManyAtOnce: actors recovering at the same time (a store may serve
// them with one read) each get their own snapshot and events, whatever the
// others have; an actor recovered twice at once gets the same both times.
func recoverManyAtOnce(t *testing.T, open func(*testing.T, Config) Store) {
	s := open(t, Config{})
	ctx := ctxT(t)
	const actors = 40
	id := func(i int) string { return fmt.Sprintf("many/%d", i) }
	for i := range actors {
		if i%4 == 0 {
			continue // nothing stored
		}
		mustAppend(t, s, id(i), events(1, int64(i), fmt.Sprintf("E%d", i)), persistence.ReminderChange{})
		if i%3 == 0 {
			if err := s.SaveSnapshot(ctx, id(i), persistence.Snapshot{Seq: int64(i / 2), Type: fmt.Sprintf("S%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var wg sync.WaitGroup
	for round := range 2 {
		for i := range actors {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := recoverAll(t, s, id(i))
				var want []persistence.Event
				switch {
				case i%4 == 0:
				case i%3 == 0:
					if r.snap == nil || r.snap.Seq != int64(i/2) || r.snap.Type != fmt.Sprintf("S%d", i) {
						t.Errorf("round %d, %s: snapshot %+v", round, id(i), r.snap)
					}
					want = events(int64(i/2)+1, int64(i), fmt.Sprintf("E%d", i))
				default:
					want = events(1, int64(i), fmt.Sprintf("E%d", i))
				}
				if i%3 != 0 && r.snap != nil {
					t.Errorf("round %d, %s: snapshot %+v, none stored", round, id(i), r.snap)
				}
				if !sameEvents(r.events, want) {
					t.Errorf("round %d, %s: %d events, want %d", round, id(i), len(r.events), len(want))
				}
			}()
		}
	}
	wg.Wait()
}

func sameEvents(got, want []persistence.Event) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].Seq != want[i].Seq || got[i].Type != want[i].Type || !bytes.Equal(got[i].Payload, want[i].Payload) {
			return false
		}
	}
	return true
}
