package actortest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/concert/ticketing/persistence"
	"github.com/concert/ticketing/persistence/journaltest"
)

// TestMemJournalContract runs the journal contract against MemJournal.
func TestMemJournalContract(t *testing.T) {
	journaltest.Run(t, func(t *testing.T, cfg journaltest.Config) journaltest.Store {
		writers := cfg.SnapshotWriters
		if writers == 0 {
			writers = persistence.DefaultSnapshotWriters
		}
		return &memStore{
			MemJournal: NewMemJournalWith(MemOptions{SnapshotWriters: writers, PruneAfterSnapshot: cfg.PruneAfterSnapshot}),
			writers:    writers,
		}
	})
}

// memStore is a MemJournal with the contract's fault hooks.
type memStore struct {
	*MemJournal
	writers int
}

// Saturate implements journaltest.Overloader with the Overload knob.
func (s *memStore) Saturate(*testing.T) (release func()) {
	s.Overload(true)
	return func() { s.Overload(false) }
}

// OccupySnapshotWriters implements journaltest.SnapshotStaller with
// HoldSnapshots.
func (s *memStore) OccupySnapshotWriters(t *testing.T) (release func()) {
	s.HoldSnapshots()
	errs := make(chan error, s.writers)
	var wg sync.WaitGroup
	for i := range s.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.SaveSnapshot(context.Background(), fmt.Sprintf("journaltest/occupier/%d", i), persistence.Snapshot{Seq: 1, Type: "S"})
		}()
	}
	Eventually(t, time.Minute, func() bool { return s.HeldSnapshots() == s.writers }, "snapshot writers not occupied")
	return func() {
		s.ReleaseSnapshots()
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("occupying snapshot: %v", err)
			}
		}
	}
}
