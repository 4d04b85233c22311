package journaltest

import (
	"testing"
	"time"

	"github.com/concert/ticketing/persistence"
)

// reminders: set (with or without events), move, clear; DueReminders
// returns those due strictly before its bound (at microsecond precision),
// by due time then actor id, up to limit; a call without events but with a
// reminder change is never fenced.
func reminders(t *testing.T, open func(*testing.T, Config) Store) {
	s := open(t, Config{})
	ctx := ctxT(t)
	// Nanoseconds on purpose: stores keep microseconds.
	base := time.Date(2031, 5, 1, 12, 0, 0, 123456789, time.UTC)
	at := func(d time.Duration) time.Time { return base.Add(d) }
	r := func(id string, d time.Duration) persistence.Reminder {
		return persistence.Reminder{ActorID: id, DueAt: at(d)}
	}

	wantReminders(t, "empty store", dueAll(t, s))
	mustAppend(t, s, "r/a", nil, set(at(3*time.Second)))
	mustAppend(t, s, "r/b", nil, set(at(time.Second)))
	mustAppend(t, s, "r/c", nil, set(at(2*time.Second)))
	mustAppend(t, s, "r/d", events(1, 1, "Held"), set(at(time.Second))) // ties with r/b: by id
	wantEvents(t, "r/d", replayAll(t, s, "r/d", 0), events(1, 1, "Held"))

	due := func(before time.Time, limit int) []persistence.Reminder {
		t.Helper()
		got, err := s.DueReminders(ctx, before, limit)
		if err != nil {
			t.Fatalf("due reminders before %v: %v", before, err)
		}
		return got
	}
	wantReminders(t, "all", dueAll(t, s), r("r/b", time.Second), r("r/d", time.Second), r("r/c", 2*time.Second), r("r/a", 3*time.Second))
	wantReminders(t, "before +2.5s", due(at(2500*time.Millisecond), 10), r("r/b", time.Second), r("r/d", time.Second), r("r/c", 2*time.Second))
	wantReminders(t, "limit 2", due(at(2500*time.Millisecond), 2), r("r/b", time.Second), r("r/d", time.Second))
	wantReminders(t, "strictly before +1s", due(at(time.Second), 10))
	wantReminders(t, "before +1s+1µs", due(at(time.Second+time.Microsecond), 10), r("r/b", time.Second), r("r/d", time.Second))

	// Move c earlier, clear b (and an actor without a reminder), with and
	// without events; d's reminder moves with a reminder-only call although
	// d has events (such calls are never fenced).
	mustAppend(t, s, "r/c", events(1, 1, "Moved"), set(at(500*time.Millisecond)))
	mustAppend(t, s, "r/b", nil, clearRem)
	mustAppend(t, s, "r/none", nil, clearRem)
	mustAppend(t, s, "r/d", nil, set(at(4*time.Second)))
	wantReminders(t, "after changes", dueAll(t, s), r("r/c", 500*time.Millisecond), r("r/a", 3*time.Second), r("r/d", 4*time.Second))
	mustAppend(t, s, "r/a", events(1, 2, "Done"), clearRem)
	wantReminders(t, "after clearing a", dueAll(t, s), r("r/c", 500*time.Millisecond), r("r/d", 4*time.Second))
	wantEvents(t, "r/a", replayAll(t, s, "r/a", 0), events(1, 2, "Done"))
}

// reminderLastChangeInBatchWins: of several reminder changes of one actor
// written in one batch, the last in call order is what is stored. (Only
// for stores that batch: others cannot order concurrent calls.)
func reminderLastChangeInBatchWins(t *testing.T, open func(*testing.T, Config) Store) {
	s := open(t, Config{})
	if _, ok := s.(Batcher); !ok {
		t.Skip("store has no batches")
	}
	base := time.Date(2031, 5, 1, 12, 0, 0, 0, time.UTC)
	mustAppend(t, s, "g", nil, set(base))
	var calls []*call
	inOneBatch(t, s, func() {
		calls = append(calls,
			start(t, s, "e", nil, set(base.Add(time.Hour))),
			start(t, s, "e", events(1, 1, "E"), set(base.Add(2*time.Hour))),
			start(t, s, "f", nil, clearRem),
			start(t, s, "f", nil, set(base.Add(3*time.Hour))),
			start(t, s, "g", nil, set(base.Add(4*time.Hour))),
			start(t, s, "g", nil, clearRem),
			// A fenced call's change is not among them.
			start(t, s, "e", events(1, 1, "Dup"), set(base.Add(5*time.Hour))),
		)
	})
	for i, c := range calls[:len(calls)-1] {
		if err := c.wait(t); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	wantFenced(t, "duplicate of e's seq 1", calls[len(calls)-1].wait(t))
	wantReminders(t, "after one batch", dueAll(t, s),
		persistence.Reminder{ActorID: "e", DueAt: base.Add(2 * time.Hour)},
		persistence.Reminder{ActorID: "f", DueAt: base.Add(3 * time.Hour)})
}
