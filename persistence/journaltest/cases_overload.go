package journaltest

import (
	"errors"
	"testing"
	"time"

	"github.com/concert/ticketing/persistence"
)

// overloadRefusesSynchronously: an overloaded store refuses AppendAsync at
// once with ErrOverloaded (which is also ErrUnavailable), without blocking,
// writing, or ever calling done.
func overloadRefusesSynchronously(t *testing.T, open func(*testing.T, Config) Store) {
	s := open(t, Config{})
	o, ok := s.(Overloader)
	if !ok {
		t.Skip("store cannot be overloaded on purpose")
	}
	due := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	release := o.Saturate(t)
	c := start(t, s, "ov", events(1, 1, "E"), set(due)) // fails the test if it blocks
	if !errors.Is(c.refused, persistence.ErrOverloaded) || !errors.Is(c.refused, persistence.ErrUnavailable) {
		t.Fatalf("append while saturated: %v, want ErrOverloaded (and ErrUnavailable)", c.refused)
	}
	release()
	// Everything queued before is complete now; the refused call was never
	// queued, so its done has not run and never will.
	mustAppend(t, s, "ov/after", events(1, 1, "E"), persistence.ReminderChange{})
	if n := c.dones.Load(); n != 0 {
		t.Fatalf("done of the refused call ran %d times", n)
	}
	wantEvents(t, "ov", replayAll(t, s, "ov", 0), nil)
	for _, r := range dueAll(t, s) {
		if r.ActorID == "ov" {
			t.Fatalf("refused call's reminder stored: %+v", r)
		}
	}
	mustAppend(t, s, "ov", events(1, 1, "E"), persistence.ReminderChange{})
}
