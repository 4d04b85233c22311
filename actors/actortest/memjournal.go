// Package actortest holds test support for the actors package: an in-memory
// journal with the semantics of the PostgreSQL one, plus knobs to make it
// slow or failing, and a polling helper.
package actortest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/concert/ticketing/persistence"
)

// MemJournal is an in-memory journal (it implements actors.Journal) with the
// same contract as persistence.Journal:
//
//   - AppendAsync keeps all of one call's events or none, and calls done
//     exactly once from another goroutine;
//   - a call that claims a sequence number already written fails with an
//     error wrapping persistence.ErrFenced;
//   - while the journal is down (SetDown) every method fails with an error
//     wrapping persistence.ErrUnavailable;
//   - SaveSnapshot keeps the snapshot with the highest Seq;
//   - Replay calls fn in Seq order, outside the journal's lock.
//
// The zero value is not usable: call NewMemJournal. Safe for concurrent use.
type MemJournal struct {
	mu        sync.Mutex
	events    map[string]map[int64]persistence.Event
	snapshots map[string]persistence.Snapshot
	failNext  []error
	down      bool
	delay     time.Duration
	appends   int
}

// NewMemJournal returns an empty journal.
func NewMemJournal() *MemJournal {
	return &MemJournal{
		events:    map[string]map[int64]persistence.Event{},
		snapshots: map[string]persistence.Snapshot{},
	}
}

// FailNext makes the next AppendAsync call fail with err (wrapped with the
// operation) and keep none of its events. Calls queue up: FailNext twice
// fails the next two appends.
func (m *MemJournal) FailNext(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failNext = append(m.failNext, err)
}

// SetDown makes every later call fail with an error wrapping
// persistence.ErrUnavailable (true) or work again (false).
func (m *MemJournal) SetDown(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = down
}

// Delay makes every later append wait d before it is written and done is
// called, as a slow commit would.
func (m *MemJournal) Delay(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.delay = d
}

// AppendAsync implements actors.Journal. Whether the call fails (FailNext,
// SetDown) is decided when it is made; the events are written, or fenced,
// after the configured delay, on another goroutine that then calls done.
func (m *MemJournal) AppendAsync(actorID string, events []persistence.Event, _ persistence.ReminderChange, done func(error)) error {
	if err := validate(actorID, events); err != nil {
		return fmt.Errorf("journal append %s: %w", actorID, err)
	}
	m.mu.Lock()
	var fail error
	switch {
	case len(m.failNext) > 0:
		fail = m.failNext[0]
		m.failNext = m.failNext[1:]
	case m.down:
		fail = errDown
	}
	delay := m.delay
	m.mu.Unlock()
	// The caller may not touch events until done, but copy anyway so a
	// buggy caller cannot rewrite history.
	evs := make([]persistence.Event, len(events))
	for i, e := range events {
		evs[i] = persistence.Event{Seq: e.Seq, Type: e.Type, Payload: append([]byte(nil), e.Payload...)}
	}
	go func() {
		if delay > 0 {
			time.Sleep(delay)
		}
		if fail != nil {
			done(fmt.Errorf("journal append %s: %w", actorID, fail))
			return
		}
		done(m.write(actorID, evs))
	}()
	return nil
}

// DueReminders implements actors.Journal (shim).
func (m *MemJournal) DueReminders(ctx context.Context, before time.Time, limit int) ([]persistence.Reminder, error) {
	return nil, nil
}

// LoadArchived implements actors.Journal (shim).
func (m *MemJournal) LoadArchived(ctx context.Context, actorID string, key int64) (persistence.Archived, bool, error) {
	return persistence.Archived{}, false, nil
}

// errDown is the cause reported while the journal is down.
var errDown = fmt.Errorf("%w: memjournal is down", persistence.ErrUnavailable)

func (m *MemJournal) write(actorID string, events []persistence.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rows := m.events[actorID]
	if rows == nil {
		rows = map[int64]persistence.Event{}
		m.events[actorID] = rows
	}
	for _, e := range events {
		if _, ok := rows[e.Seq]; ok {
			return fmt.Errorf("journal append %s seq %d: %w", actorID, e.Seq, persistence.ErrFenced)
		}
	}
	for _, e := range events {
		rows[e.Seq] = e
	}
	m.appends++
	return nil
}

func validate(actorID string, events []persistence.Event) error {
	if actorID == "" {
		return errors.New("invalid append: empty actor id")
	}
	for i, e := range events {
		if e.Seq <= 0 || (i > 0 && e.Seq != events[i-1].Seq+1) {
			return fmt.Errorf("invalid append: sequence numbers must be positive and contiguous (seq %d at %d)", e.Seq, i)
		}
	}
	return nil
}

// LoadSnapshot implements actors.Journal.
func (m *MemJournal) LoadSnapshot(ctx context.Context, actorID string) (persistence.Snapshot, bool, error) {
	if err := ctx.Err(); err != nil {
		return persistence.Snapshot{}, false, fmt.Errorf("journal load snapshot %s: %w", actorID, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return persistence.Snapshot{}, false, fmt.Errorf("journal load snapshot %s: %w", actorID, errDown)
	}
	s, ok := m.snapshots[actorID]
	if !ok {
		return persistence.Snapshot{}, false, nil
	}
	s.Payload = append([]byte(nil), s.Payload...)
	return s, true, nil
}

// SaveSnapshot implements actors.Journal: an older snapshot never replaces a
// newer one.
func (m *MemJournal) SaveSnapshot(ctx context.Context, actorID string, s persistence.Snapshot) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("journal save snapshot %s: %w", actorID, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return fmt.Errorf("journal save snapshot %s: %w", actorID, errDown)
	}
	if old, ok := m.snapshots[actorID]; ok && old.Seq >= s.Seq {
		return nil
	}
	s.Payload = append([]byte(nil), s.Payload...)
	m.snapshots[actorID] = s
	return nil
}

// Replay implements actors.Journal.
func (m *MemJournal) Replay(ctx context.Context, actorID string, afterSeq int64, fn func(persistence.Event) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("journal replay %s: %w", actorID, err)
	}
	m.mu.Lock()
	if m.down {
		m.mu.Unlock()
		return fmt.Errorf("journal replay %s: %w", actorID, errDown)
	}
	events := m.eventsLocked(actorID, afterSeq)
	m.mu.Unlock()
	for _, e := range events {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// Events returns a copy of the actor's events in Seq order.
func (m *MemJournal) Events(actorID string) []persistence.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.eventsLocked(actorID, 0)
}

// Snapshot returns the actor's saved snapshot, if any.
func (m *MemJournal) Snapshot(actorID string) (persistence.Snapshot, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.snapshots[actorID]
	return s, ok
}

// Appends counts the successful AppendAsync calls so far.
func (m *MemJournal) Appends() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.appends
}

func (m *MemJournal) eventsLocked(actorID string, afterSeq int64) []persistence.Event {
	rows := m.events[actorID]
	out := make([]persistence.Event, 0, len(rows))
	for seq, e := range rows {
		if seq > afterSeq {
			out = append(out, persistence.Event{Seq: e.Seq, Type: e.Type, Payload: append([]byte(nil), e.Payload...)})
		}
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Seq < out[k].Seq })
	return out
}

// Eventually polls cond every few milliseconds until it returns true, and
// fails the test if that does not happen within timeout. Use it instead of
// sleeping for asynchronous effects (timers, passivation, retries).
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msgAndArgs ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			msg := "condition not met"
			if len(msgAndArgs) > 0 {
				if f, ok := msgAndArgs[0].(string); ok {
					msg = fmt.Sprintf(f, msgAndArgs[1:]...)
				}
			}
			t.Fatalf("eventually (after %v): %s", timeout, msg)
		}
		time.Sleep(wait)
		if wait < 20*time.Millisecond {
			wait *= 2
		}
	}
}
