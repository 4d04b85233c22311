package actortest

import (
	"context"
	"fmt"

	"github.com/concert/ticketing/persistence"
)

// LastSeq has the contract of persistence.Journal.LastSeq: the highest
// sequence number stored for the actor (its newest event, or its snapshot
// if nothing is stored above it), 0 for none. LastSeqCalls counts the calls.
func (m *MemJournal) LastSeq(ctx context.Context, actorID string) (int64, error) {
	if err := persistence.ValidateActorID(actorID); err != nil {
		return 0, fmt.Errorf("journal last seq %q: %w", actorID, err)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("journal last seq %s: %w", actorID, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastSeqCalls++
	if m.down {
		return 0, fmt.Errorf("journal last seq %s: %w", actorID, errDown)
	}
	var last int64
	if s, ok := m.snapshots[actorID]; ok {
		last = s.Seq
	}
	for seq := range m.events[actorID] {
		last = max(last, seq)
	}
	return last, nil
}

// LastSeqCalls counts the LastSeq calls made so far (read fences).
func (m *MemJournal) LastSeqCalls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastSeqCalls
}
