package actortest

import (
	"fmt"
	"time"

	"github.com/concert/ticketing/persistence"
)

// FailNext makes the next AppendAsync call fail through done with err
// (wrapped with the operation) and keep none of its events. Calls queue up:
// FailNext twice fails the next two appends.
func (m *MemJournal) FailNext(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failNext = append(m.failNext, err)
}

// WriteButFail makes the next AppendAsync call that FailNext and SetDown
// leave alone be written (or fenced) as usual, and then report through done
// an error wrapping persistence.ErrUnavailable and err: a commit whose reply
// was lost, so the caller cannot tell whether it happened. A nil err gives a
// generic cause. Calls queue up like FailNext's.
func (m *MemJournal) WriteButFail(err error) {
	if err == nil {
		err = fmt.Errorf("%w: memjournal lost the commit's reply", persistence.ErrUnavailable)
	} else {
		err = fmt.Errorf("%w: %w", persistence.ErrUnavailable, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writeButFail = append(m.writeButFail, err)
}

// SetDown makes every later call fail with an error wrapping
// persistence.ErrUnavailable (true) or work again (false). Appends are still
// accepted and fail through done, as with an unreachable database.
func (m *MemJournal) SetDown(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = down
}

// Overload makes every later AppendAsync return at once an error wrapping
// persistence.ErrOverloaded (true), without writing or calling done, as a
// full queue does; false accepts appends again.
func (m *MemJournal) Overload(overloaded bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.overloaded = overloaded
}

// Delay makes every later append wait d before it is written and done is
// called, as a slow commit would.
func (m *MemJournal) Delay(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.delay = d
}

// HoldCompletions holds back the done callbacks of appends that complete
// from now on: their outcome is applied (written, fenced or failed) as
// usual, but done runs only at ReleaseCompletions — a completion arriving
// late, e.g. after the actor restarted.
func (m *MemJournal) HoldCompletions() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.holding = true
}

// ReleaseCompletions stops holding completions and runs the held done
// callbacks, in the order their appends completed, on another goroutine; it
// returns when they have all returned.
func (m *MemJournal) ReleaseCompletions() {
	m.mu.Lock()
	m.holding = false
	held := m.held
	m.held = nil
	m.mu.Unlock()
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for _, f := range held {
			f()
		}
	}()
	<-finished
}

// HeldCompletions is the number of done callbacks held back now.
func (m *MemJournal) HeldCompletions() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.held)
}

// complete runs f (a call of done) now, or holds it back.
func (m *MemJournal) complete(f func()) {
	m.mu.Lock()
	if m.holding {
		m.held = append(m.held, f)
		m.mu.Unlock()
		return
	}
	m.mu.Unlock()
	f()
}

// HoldSnapshots makes later SaveSnapshot calls wait, each holding one of the
// SnapshotWriters slots, until ReleaseSnapshots (or their ctx ends): a slow
// snapshot write, to fill the slots deterministically.
func (m *MemJournal) HoldSnapshots() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.snapGate == nil {
		m.snapGate = make(chan struct{})
	}
}

// ReleaseSnapshots lets the held SaveSnapshot calls, and later ones, run.
func (m *MemJournal) ReleaseSnapshots() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.snapGate != nil {
		close(m.snapGate)
		m.snapGate = nil
	}
}

// HeldSnapshots is the number of SaveSnapshot calls waiting now because of
// HoldSnapshots.
func (m *MemJournal) HeldSnapshots() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snapHeld
}
