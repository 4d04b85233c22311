package actortest

import (
	"context"
	"fmt"

	"github.com/concert/ticketing/persistence"
)

// LoadSnapshot has the contract of persistence.Journal.LoadSnapshot.
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
	s.Payload = append([]byte{}, s.Payload...)
	return s, true, nil
}

// Recover has the contract of persistence.Journal.Recover: LoadSnapshot,
// then Replay after it.
func (m *MemJournal) Recover(ctx context.Context, actorID string, restore func(persistence.Snapshot) error, apply func(persistence.Event) error) error {
	s, ok, err := m.LoadSnapshot(ctx, actorID)
	if err != nil {
		return fmt.Errorf("journal recover %s: %w", actorID, err)
	}
	if ok {
		if err := restore(s); err != nil {
			return err
		}
	}
	return m.Replay(ctx, actorID, s.Seq, apply)
}

// SaveSnapshot has the contract of persistence.Journal.SaveSnapshot: an
// older or equal snapshot never replaces a newer one (and its archive is
// dropped with it); the archive and, with PruneAfterSnapshot, the pruning
// are applied atomically with the snapshot; beyond SnapshotWriters
// concurrent calls it fails at once with ErrSnapshotBusy. While snapshots
// are held (HoldSnapshots) a call waits, holding its writer slot, until
// ReleaseSnapshots or ctx ends.
func (m *MemJournal) SaveSnapshot(ctx context.Context, actorID string, s persistence.Snapshot) error {
	if err := persistence.ValidateSnapshot(actorID, s); err != nil {
		return fmt.Errorf("journal save snapshot %q: %w", actorID, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("journal save snapshot %s: %w", actorID, err)
	}
	m.mu.Lock()
	if m.snapRunning >= m.opts.SnapshotWriters {
		m.mu.Unlock()
		return fmt.Errorf("journal save snapshot %s: %w (%d running)", actorID, persistence.ErrSnapshotBusy, m.opts.SnapshotWriters)
	}
	m.snapRunning++
	gate := m.snapGate
	if gate != nil {
		m.snapHeld++
	}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.snapRunning--
		m.mu.Unlock()
	}()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
		}
		m.mu.Lock()
		m.snapHeld--
		m.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("journal save snapshot %s: %w", actorID, err)
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return fmt.Errorf("journal save snapshot %s: %w", actorID, errDown)
	}
	old, hadPrev := m.snapshots[actorID]
	if hadPrev && old.Seq >= s.Seq {
		return nil
	}
	prevSeq := old.Seq
	m.snapshots[actorID] = persistence.Snapshot{Seq: s.Seq, Type: s.Type, Payload: append([]byte{}, s.Payload...)}
	if len(s.Archive) > 0 {
		recs := m.archive[actorID]
		if recs == nil {
			recs = map[int64]persistence.Archived{}
			m.archive[actorID] = recs
		}
		for _, a := range s.Archive {
			recs[a.Key] = persistence.Archived{Key: a.Key, Type: a.Type, Payload: append([]byte{}, a.Payload...)}
		}
	}
	if m.opts.PruneAfterSnapshot && hadPrev {
		for seq := range m.events[actorID] {
			if seq <= prevSeq {
				delete(m.events[actorID], seq)
			}
		}
	}
	return nil
}

// LoadArchived has the contract of persistence.Journal.LoadArchived.
func (m *MemJournal) LoadArchived(ctx context.Context, actorID string, key int64) (persistence.Archived, bool, error) {
	if err := ctx.Err(); err != nil {
		return persistence.Archived{}, false, fmt.Errorf("journal load archived %s/%d: %w", actorID, key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return persistence.Archived{}, false, fmt.Errorf("journal load archived %s/%d: %w", actorID, key, errDown)
	}
	a, ok := m.archive[actorID][key]
	if !ok {
		return persistence.Archived{}, false, nil
	}
	a.Payload = append([]byte{}, a.Payload...)
	return a, true, nil
}

// Snapshot returns the actor's saved snapshot, if any.
func (m *MemJournal) Snapshot(actorID string) (persistence.Snapshot, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.snapshots[actorID]
	return s, ok
}
