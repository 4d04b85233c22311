package actortest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/concert/ticketing/persistence"
)

// The contract shared with the PostgreSQL journal is in
// memjournal_contract_test.go; these tests cover the fault knobs.

func evs(seqs ...int64) []persistence.Event {
	events := make([]persistence.Event, len(seqs))
	for i, s := range seqs {
		events[i] = persistence.Event{Seq: s, Type: "t", Payload: []byte{byte(s)}}
	}
	return events
}

// appendAsync makes a call that must be accepted, and returns done's
// channel.
func appendAsync(t *testing.T, j *MemJournal, id string, rem persistence.ReminderChange, seqs ...int64) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	if err := j.AppendAsync(id, evs(seqs...), rem, func(err error) { done <- err }); err != nil {
		t.Fatalf("append %s %v refused: %v", id, seqs, err)
	}
	return done
}

func await(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("done never called")
		return nil
	}
}

func appendSync(t *testing.T, j *MemJournal, id string, seqs ...int64) error {
	t.Helper()
	return await(t, appendAsync(t, j, id, persistence.ReminderChange{}, seqs...))
}

func seqs(j *MemJournal, id string) []int64 {
	var out []int64
	for _, e := range j.Events(id) {
		out = append(out, e.Seq)
	}
	return out
}

func TestFailNextAndSetDown(t *testing.T) {
	j := NewMemJournal()
	boom := errors.New("boom")
	j.FailNext(boom)
	if err := appendSync(t, j, "a", 1); !errors.Is(err, boom) {
		t.Fatalf("FailNext: %v", err)
	}
	if got := seqs(j, "a"); len(got) != 0 {
		t.Fatalf("failed call wrote %v", got)
	}
	if err := appendSync(t, j, "a", 1); err != nil {
		t.Fatalf("FailNext must fail one call only: %v", err)
	}

	j.SetDown(true)
	if err := appendSync(t, j, "a", 2); !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("down: %v", err)
	}
	ctx := context.Background()
	if err := j.Replay(ctx, "a", 0, func(persistence.Event) error { return nil }); !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("replay while down: %v", err)
	}
	if _, _, err := j.LoadSnapshot(ctx, "a"); !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("load snapshot while down: %v", err)
	}
	if err := j.SaveSnapshot(ctx, "a", persistence.Snapshot{Seq: 1}); !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("save snapshot while down: %v", err)
	}
	if _, err := j.DueReminders(ctx, time.Now(), 1); !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("due reminders while down: %v", err)
	}
	j.SetDown(false)
	if got := seqs(j, "a"); len(got) != 1 {
		t.Fatalf("seqs %v", got)
	}
}

func TestWriteButFail(t *testing.T) {
	j := NewMemJournal()
	due := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	lost := errors.New("connection reset")
	j.WriteButFail(lost)
	err := await(t, appendAsync(t, j, "a", persistence.ReminderChange{Set: true, DueAt: due}, 1, 2))
	if !errors.Is(err, persistence.ErrUnavailable) || !errors.Is(err, lost) {
		t.Fatalf("WriteButFail: %v, want ErrUnavailable wrapping the cause", err)
	}
	if got := seqs(j, "a"); len(got) != 2 {
		t.Fatalf("the ambiguous call was not written: %v", got)
	}
	if got, ok := j.Reminder("a"); !ok || !got.Equal(due) {
		t.Fatalf("the ambiguous call's reminder: %v %v", got, ok)
	}
	// Retrying the same call is fenced: it was written after all.
	if err := appendSync(t, j, "a", 1, 2); !errors.Is(err, persistence.ErrFenced) {
		t.Fatalf("retry after a lost reply: %v", err)
	}
	j.WriteButFail(nil)
	if err := appendSync(t, j, "a", 3); !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("WriteButFail(nil): %v", err)
	}
	if err := appendSync(t, j, "a", 4); err != nil {
		t.Fatalf("WriteButFail must fail one call only: %v", err)
	}
	if got := seqs(j, "a"); len(got) != 4 {
		t.Fatalf("seqs %v", got)
	}
}

func TestHoldCompletions(t *testing.T) {
	j := NewMemJournal()
	j.HoldCompletions()
	first := appendAsync(t, j, "a", persistence.ReminderChange{}, 1)
	second := appendAsync(t, j, "a", persistence.ReminderChange{}, 1) // fenced, outcome held too
	Eventually(t, 10*time.Second, func() bool { return j.HeldCompletions() == 2 }, "completions not held")
	select {
	case err := <-first:
		t.Fatalf("held completion delivered: %v", err)
	case err := <-second:
		t.Fatalf("held completion delivered: %v", err)
	default:
	}
	// Written already: a new incarnation would recover it.
	if got := seqs(j, "a"); len(got) != 1 {
		t.Fatalf("held call not written: %v", got)
	}
	j.ReleaseCompletions() // returns once both done have run
	e1, e2 := <-first, <-second
	if (e1 == nil) == (e2 == nil) || !errors.Is(errors.Join(e1, e2), persistence.ErrFenced) {
		t.Fatalf("released outcomes: %v, %v; want one nil, one fenced", e1, e2)
	}
	if err := appendSync(t, j, "a", 2); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestOverload(t *testing.T) {
	j := NewMemJournal()
	j.Overload(true)
	called := make(chan struct{}, 1)
	err := j.AppendAsync("a", evs(1), persistence.ReminderChange{}, func(error) { called <- struct{}{} })
	if !errors.Is(err, persistence.ErrOverloaded) || !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("overloaded append: %v", err)
	}
	j.Overload(false)
	if err := appendSync(t, j, "a", 1); err != nil {
		t.Fatalf("after overload: %v", err)
	}
	select {
	case <-called:
		t.Fatal("done of a refused call ran")
	default:
	}
}

func TestDelay(t *testing.T) {
	j := NewMemJournal()
	j.Delay(20 * time.Millisecond)
	began := time.Now()
	if err := appendSync(t, j, "a", 1); err != nil || time.Since(began) < 20*time.Millisecond {
		t.Fatalf("delayed append: %v after %v", err, time.Since(began))
	}
}
