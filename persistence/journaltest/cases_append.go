package journaltest

import (
	"errors"
	"testing"
	"time"

	"github.com/concert/ticketing/persistence"
)

// appendReplayOrderAndPaging: calls of varying size come back in Seq order,
// across Replay's pages (the PostgreSQL journal reads 1,000 rows a page),
// from any afterSeq, per actor; an error from fn stops the replay.
func appendReplayOrderAndPaging(t *testing.T, open func(*testing.T, Config) Store) {
	s := open(t, Config{})
	const total = 2500
	var want []persistence.Event
	for seq := int64(1); seq <= total; {
		n := min(seq%37+1, total-seq+1)
		evs := events(seq, seq+n-1, "SeatHeld")
		mustAppend(t, s, "seat/1", evs, persistence.ReminderChange{})
		want = append(want, evs...)
		seq += n
	}
	mustAppend(t, s, "seat/2", events(1, 3, "Other"), persistence.ReminderChange{})

	wantEvents(t, "seat/1 from 0", replayAll(t, s, "seat/1", 0), want)
	wantEvents(t, "seat/1 after 1999", replayAll(t, s, "seat/1", 1999), want[1999:])
	wantEvents(t, "seat/1 after the end", replayAll(t, s, "seat/1", total), nil)
	wantEvents(t, "seat/2", replayAll(t, s, "seat/2", 0), events(1, 3, "Other"))
	wantEvents(t, "unknown actor", replayAll(t, s, "seat/404", 0), nil)

	stop := errors.New("stop")
	calls := 0
	err := s.Replay(ctxT(t), "seat/1", 0, func(persistence.Event) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("replay with failing fn: err %v after %d calls", err, calls)
	}
}

// invalidCallsRefusedSynchronously: malformed calls are refused by
// AppendAsync itself with ErrInvalid, never reach done, and write nothing;
// calls without events are fine.
func invalidCallsRefusedSynchronously(t *testing.T, open func(*testing.T, Config) Store) {
	s := open(t, Config{})
	due := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, tc := range map[string]struct {
		actor string
		evs   []persistence.Event
		rem   persistence.ReminderChange
	}{
		"empty actor":        {"", events(1, 1, "E"), persistence.ReminderChange{}},
		"seq zero":           {"a", events(0, 1, "E"), persistence.ReminderChange{}},
		"gap":                {"a", []persistence.Event{{Seq: 1}, {Seq: 3}}, persistence.ReminderChange{}},
		"NUL in actor":       {"a\x00b", events(1, 1, "E"), persistence.ReminderChange{}},
		"bad UTF-8 type":     {"a", []persistence.Event{{Seq: 1, Type: "\xff"}}, persistence.ReminderChange{}},
		"set and clear":      {"a", events(1, 1, "E"), persistence.ReminderChange{Set: true, DueAt: due, Clear: true}},
		"set without due":    {"a", events(1, 1, "E"), persistence.ReminderChange{Set: true}},
		"reminder, bad id":   {"\xff", nil, set(due)},
		"empty, empty actor": {"", nil, persistence.ReminderChange{}},
	} {
		c := start(t, s, tc.actor, tc.evs, tc.rem)
		if !errors.Is(c.refused, persistence.ErrInvalid) || errors.Is(c.refused, persistence.ErrUnavailable) || errors.Is(c.refused, persistence.ErrFenced) {
			t.Errorf("%s: AppendAsync returned %v, want ErrInvalid", name, c.refused)
		}
	}
	if _, err := s.DueReminders(ctxT(t), due, 0); !errors.Is(err, persistence.ErrInvalid) {
		t.Errorf("DueReminders with limit 0: %v, want ErrInvalid", err)
	}
	err := s.SaveSnapshot(ctxT(t), "a", persistence.Snapshot{Seq: 1, Type: "S", Archive: []persistence.Archived{{Key: 7}, {Key: 7}}})
	if !errors.Is(err, persistence.ErrInvalid) {
		t.Errorf("snapshot archiving one key twice: %v, want ErrInvalid", err)
	}

	// Calls without events: nothing to write, or only a reminder.
	mustAppend(t, s, "a", nil, persistence.ReminderChange{})
	mustAppend(t, s, "r", nil, set(due))
	// The store still works, and nothing was written by the bad calls.
	mustAppend(t, s, "a", events(1, 1, "E"), persistence.ReminderChange{})
	wantEvents(t, "a", replayAll(t, s, "a", 0), events(1, 1, "E"))
	if _, ok, err := s.LoadSnapshot(ctxT(t), "a"); ok || err != nil {
		t.Fatalf("snapshot after a refused save: ok %v, err %v", ok, err)
	}
	wantReminders(t, "after bad calls", dueAll(t, s), persistence.Reminder{ActorID: "r", DueAt: due})
}

// fenceOnExistingSeq: a call claiming a sequence number already written
// fails with ErrFenced and keeps nothing — none of its rows, not its
// reminder change.
func fenceOnExistingSeq(t *testing.T, open func(*testing.T, Config) Store) {
	s := open(t, Config{})
	due := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	old := events(1, 2, "Old")
	mustAppend(t, s, "A", old, persistence.ReminderChange{})
	mustAppend(t, s, "K", nil, set(due)) // K's reminder, to be kept

	wantFenced(t, "A over seq 2", appendWait(t, s, "A", events(2, 3, "New"), set(due)))
	wantFenced(t, "A over seq 1..2", appendWait(t, s, "A", events(1, 2, "New"), persistence.ReminderChange{}))
	mustAppend(t, s, "K", events(1, 1, "Old"), persistence.ReminderChange{})
	wantFenced(t, "K over seq 1, clearing", appendWait(t, s, "K", events(1, 1, "New"), clearRem))

	wantEvents(t, "A", replayAll(t, s, "A", 0), old)
	wantReminders(t, "after fenced calls", dueAll(t, s), persistence.Reminder{ActorID: "K", DueAt: due})

	// The rightful next call goes through.
	mustAppend(t, s, "A", events(3, 4, "Old"), persistence.ReminderChange{})
	wantEvents(t, "A", replayAll(t, s, "A", 0), events(1, 4, "Old"))
}
