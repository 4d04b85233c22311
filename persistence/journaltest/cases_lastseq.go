package journaltest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/concert/ticketing/persistence"
)

// lastSeq: LastSeq is the highest sequence number stored for an actor — 0
// for none, its newest event after every completed append, unchanged by a
// fenced append, its snapshot's when no event is stored above it — for each
// of many actors asked at once (a store may answer them in one query), and
// ErrInvalid for a bad id. It is what an actor's read fence compares with
// what it has applied.
func lastSeq(t *testing.T, open func(*testing.T, Config) Store) {
	s := open(t, Config{PruneAfterSnapshot: true})
	ctx := ctxT(t)
	want := func(actor string, seq int64) {
		t.Helper()
		got, err := s.LastSeq(ctx, actor)
		if err != nil || got != seq {
			t.Fatalf("LastSeq(%s) = %d, %v; want %d", actor, got, err, seq)
		}
	}
	want("fence/none", 0)
	mustAppend(t, s, "fence/a", events(1, 3, "E"), persistence.ReminderChange{})
	want("fence/a", 3)
	mustAppend(t, s, "fence/a", events(4, 4, "E"), persistence.ReminderChange{})
	want("fence/a", 4)
	wantFenced(t, "a over seq 4..6", appendWait(t, s, "fence/a", events(4, 6, "Zombie"), persistence.ReminderChange{}))
	want("fence/a", 4)
	mustAppend(t, s, "fence/a", nil, set(time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC))) // a reminder alone is no event
	want("fence/a", 4)

	// A snapshot with nothing above it (and its events pruned by the next).
	mustAppend(t, s, "fence/s", events(1, 5, "E"), persistence.ReminderChange{})
	for _, seq := range []int64{3, 5} {
		if err := s.SaveSnapshot(ctx, "fence/s", persistence.Snapshot{Seq: seq, Type: "S"}); err != nil {
			t.Fatal(err)
		}
	}
	want("fence/s", 5)
	if err := s.SaveSnapshot(ctx, "fence/only-snapshot", persistence.Snapshot{Seq: 7, Type: "S"}); err != nil {
		t.Fatal(err)
	}
	want("fence/only-snapshot", 7)

	// Many actors at once, each asked several times.
	const actors = 40
	for i := range actors {
		mustAppend(t, s, fmt.Sprintf("fence/many/%d", i), events(1, int64(i%5+1), "E"), persistence.ReminderChange{})
	}
	var wg sync.WaitGroup
	errs := make(chan error, actors*3)
	for i := range actors * 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := i % actors
			got, err := s.LastSeq(ctx, fmt.Sprintf("fence/many/%d", a))
			if err != nil || got != int64(a%5+1) {
				errs <- fmt.Errorf("actor %d: %d, %v; want %d", a, got, err, a%5+1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	if _, err := s.LastSeq(ctx, ""); !errors.Is(err, persistence.ErrInvalid) {
		t.Errorf("LastSeq of an empty id: %v, want ErrInvalid", err)
	}
}
