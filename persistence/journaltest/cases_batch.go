package journaltest

import (
	"testing"
	"time"

	"github.com/concert/ticketing/persistence"
)

// allOrNothingPerCallInBatch: calls of several actors written together (one
// batch, where the store batches) succeed or fail one by one: a fenced call
// keeps nothing, its neighbours keep everything; of two calls claiming the
// same row exactly one wins, and the history never mixes them.
func allOrNothingPerCallInBatch(t *testing.T, open func(*testing.T, Config) Store) {
	s := open(t, Config{})
	due := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	mustAppend(t, s, "A", events(1, 1, "Old"), persistence.ReminderChange{})

	var a, b, c, x1, x2 *call
	inOneBatch(t, s, func() {
		a = start(t, s, "A", events(1, 2, "New"), set(due))
		b = start(t, s, "B", events(1, 2, "New"), set(due.Add(time.Second)))
		c = start(t, s, "C", events(1, 1, "New"), persistence.ReminderChange{})
		x1 = start(t, s, "X", events(1, 2, "First"), persistence.ReminderChange{})
		x2 = start(t, s, "X", events(2, 3, "Second"), persistence.ReminderChange{})
	})
	wantFenced(t, "A", a.wait(t))
	if err := b.wait(t); err != nil {
		t.Fatalf("B: %v", err)
	}
	if err := c.wait(t); err != nil {
		t.Fatalf("C: %v", err)
	}
	e1, e2 := x1.wait(t), x2.wait(t)
	if (e1 == nil) == (e2 == nil) {
		t.Fatalf("X: want exactly one winner: %v, %v", e1, e2)
	}
	if e1 != nil {
		wantFenced(t, "X loser", e1)
		wantEvents(t, "X", replayAll(t, s, "X", 0), events(2, 3, "Second"))
	} else {
		wantFenced(t, "X loser", e2)
		wantEvents(t, "X", replayAll(t, s, "X", 0), events(1, 2, "First"))
	}

	wantEvents(t, "A", replayAll(t, s, "A", 0), events(1, 1, "Old"))
	wantEvents(t, "B", replayAll(t, s, "B", 0), events(1, 2, "New"))
	wantEvents(t, "C", replayAll(t, s, "C", 0), events(1, 1, "New"))
	wantReminders(t, "reminders", dueAll(t, s), persistence.Reminder{ActorID: "B", DueAt: due.Add(time.Second)})
}
