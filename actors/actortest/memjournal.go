// Package actortest holds test support for the actors package: an in-memory
// journal with the semantics of the PostgreSQL one, plus knobs to make it
// slow, failing or ambiguous the way a real database can be, and a polling
// helper.
package actortest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/concert/ticketing/persistence"
)

// MemOptions configure a MemJournal; zero values take the defaults.
type MemOptions struct {
	// SnapshotWriters is the number of SaveSnapshot calls that may run at
	// once; a call beyond it fails at once with ErrSnapshotBusy. Default
	// persistence.DefaultSnapshotWriters.
	SnapshotWriters int
	// PruneAfterSnapshot makes SaveSnapshot delete the actor's events up to
	// the snapshot's Seq, as persistence.JournalOptions.PruneAfterSnapshot.
	PruneAfterSnapshot bool
}

// MemJournal is an in-memory journal with the contract of
// persistence.Journal (the contract suite persistence/journaltest runs
// against both):
//
//   - AppendAsync refuses a malformed call (ErrInvalid) or, when overloaded
//     (Overload), any call (ErrOverloaded) synchronously, without calling
//     done; otherwise it keeps all of one call's events and reminder change
//     or none, and calls done exactly once from another goroutine;
//   - a call that claims a sequence number already written, or at or below
//     the actor's snapshot, fails with an error wrapping ErrFenced;
//   - while the journal is down (SetDown) every method fails with an error
//     wrapping ErrUnavailable;
//   - SaveSnapshot keeps the snapshot with the highest Seq, stores its
//     archive with it, prunes if configured, and refuses with
//     ErrSnapshotBusy beyond SnapshotWriters concurrent calls;
//   - Replay calls fn in Seq order, outside the journal's lock;
//   - LastSeq returns the highest sequence number stored (event or snapshot).
//
// The zero value is not usable: call NewMemJournal. Safe for concurrent use.
type MemJournal struct {
	opts MemOptions

	mu        sync.Mutex
	events    map[string]map[int64]persistence.Event
	snapshots map[string]persistence.Snapshot
	archive   map[string]map[int64]persistence.Archived
	reminders map[string]time.Time
	appends   int
	// lastSeqCalls counts LastSeq calls (memjournal_lastseq.go).
	lastSeqCalls int

	// fault knobs (memjournal_faults.go)
	failNext     []error
	writeButFail []error
	down         bool
	overloaded   bool
	delay        time.Duration
	holding      bool
	held         []func()
	snapRunning  int
	snapGate     chan struct{} // non-nil while snapshots are held
	snapHeld     int
}

// NewMemJournal returns an empty journal with the default options.
func NewMemJournal() *MemJournal { return NewMemJournalWith(MemOptions{}) }

// NewMemJournalWith returns an empty journal configured by opts.
func NewMemJournalWith(opts MemOptions) *MemJournal {
	if opts.SnapshotWriters <= 0 {
		opts.SnapshotWriters = persistence.DefaultSnapshotWriters
	}
	return &MemJournal{
		opts:      opts,
		events:    map[string]map[int64]persistence.Event{},
		snapshots: map[string]persistence.Snapshot{},
		archive:   map[string]map[int64]persistence.Archived{},
		reminders: map[string]time.Time{},
	}
}

// errDown is the cause reported while the journal is down.
var errDown = fmt.Errorf("%w: memjournal is down", persistence.ErrUnavailable)

// AppendAsync has the contract of persistence.Journal.AppendAsync. Whether
// the call fails (Overload synchronously; FailNext, SetDown, WriteButFail
// through done) is decided when it is made; the events are written, or
// fenced, after the configured Delay, on another goroutine that then calls
// done (or holds it back, see HoldCompletions).
func (m *MemJournal) AppendAsync(actorID string, events []persistence.Event, reminder persistence.ReminderChange, done func(error)) error {
	if err := persistence.ValidateAppend(actorID, events, reminder); err != nil {
		return fmt.Errorf("journal append %s: %w", actorID, err)
	}
	if len(events) == 0 && reminder.IsZero() {
		go done(nil)
		return nil
	}
	m.mu.Lock()
	if m.overloaded {
		m.mu.Unlock()
		return fmt.Errorf("journal append %s: %w: memjournal overloaded", actorID, persistence.ErrOverloaded)
	}
	var fail, lost error
	switch {
	case len(m.failNext) > 0:
		fail = m.failNext[0]
		m.failNext = m.failNext[1:]
	case m.down:
		fail = errDown
	case len(m.writeButFail) > 0:
		lost = m.writeButFail[0]
		m.writeButFail = m.writeButFail[1:]
	}
	delay := m.delay
	m.mu.Unlock()
	// The caller may not touch events until done, but copy anyway so a
	// buggy caller cannot rewrite history.
	evs := make([]persistence.Event, len(events))
	for i, e := range events {
		evs[i] = copyEvent(e)
	}
	reminder.DueAt = pgTime(reminder.DueAt)
	go func() {
		if delay > 0 {
			time.Sleep(delay)
		}
		var err error
		switch {
		case fail != nil:
			err = fmt.Errorf("journal append %s: %w", actorID, fail)
		case lost != nil:
			_ = m.write(actorID, evs, reminder) // written (or fenced); the reply is lost either way
			err = fmt.Errorf("journal append %s: %w", actorID, lost)
		default:
			err = m.write(actorID, evs, reminder)
		}
		m.complete(func() { done(err) })
	}()
	return nil
}

// write applies one call: all of it, or nothing if it is fenced.
func (m *MemJournal) write(actorID string, events []persistence.Event, reminder persistence.ReminderChange) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rows := m.events[actorID]
	if len(events) > 0 {
		if s, ok := m.snapshots[actorID]; ok && events[0].Seq <= s.Seq {
			return fmt.Errorf("journal append %s seq %d: at or below snapshot %d: %w", actorID, events[0].Seq, s.Seq, persistence.ErrFenced)
		}
		for _, e := range events {
			if _, ok := rows[e.Seq]; ok {
				return fmt.Errorf("journal append %s seq %d: %w", actorID, e.Seq, persistence.ErrFenced)
			}
		}
		if rows == nil {
			rows = map[int64]persistence.Event{}
			m.events[actorID] = rows
		}
		for _, e := range events {
			rows[e.Seq] = e
		}
	}
	switch {
	case reminder.Set:
		m.reminders[actorID] = reminder.DueAt
	case reminder.Clear:
		delete(m.reminders, actorID)
	}
	m.appends++
	return nil
}

// Replay has the contract of persistence.Journal.Replay.
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

// Appends counts the AppendAsync calls written so far (WriteButFail's
// included).
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
			out = append(out, copyEvent(e))
		}
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Seq < out[k].Seq })
	return out
}

func copyEvent(e persistence.Event) persistence.Event {
	return persistence.Event{Seq: e.Seq, Type: e.Type, Payload: append([]byte{}, e.Payload...)}
}

// pgTime is t as PostgreSQL stores a timestamptz: microseconds, and
// returned in UTC here.
func pgTime(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }
