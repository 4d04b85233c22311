// Package journaltest is the contract of an actor journal, written once and
// run against every implementation — persistence.Journal on PostgreSQL and
// actortest.MemJournal in memory — so that the two cannot drift apart:
//
//	func TestContract(t *testing.T) {
//		journaltest.Run(t, func(t *testing.T, cfg journaltest.Config) journaltest.Store {
//			return openMyJournal(t, cfg)
//		})
//	}
//
// Cases that need to drive a store into a particular state (one batch, a
// full queue, busy snapshot writers) use the optional hook interfaces
// Batcher, Overloader and SnapshotStaller, implemented by the value open
// returns (typically a test wrapper around the journal); without the hook a
// case is skipped or, for Batcher, runs its calls unbatched.
package journaltest

import (
	"context"
	"testing"
	"time"

	"github.com/concert/ticketing/persistence"
)

// Store is the journal an event-sourced actor uses, with the contract of
// persistence.Journal (see its methods for the details).
type Store interface {
	// AppendAsync refuses a call synchronously (ErrInvalid, ErrOverloaded,
	// ErrUnavailable: done never runs), or returns nil and calls done once,
	// later, from another goroutine: nil, ErrFenced or ErrUnavailable.
	AppendAsync(actorID string, events []persistence.Event, reminder persistence.ReminderChange, done func(error)) error
	// Replay calls fn for each event after afterSeq, in Seq order.
	Replay(ctx context.Context, actorID string, afterSeq int64, fn func(persistence.Event) error) error
	// LoadSnapshot returns the actor's newest snapshot, if any.
	LoadSnapshot(ctx context.Context, actorID string) (persistence.Snapshot, bool, error)
	// Recover hands the snapshot, if any, to restore, then every event
	// after it to apply, in Seq order.
	Recover(ctx context.Context, actorID string, restore func(persistence.Snapshot) error, apply func(persistence.Event) error) error
	// SaveSnapshot stores a newer snapshot with its archive (and prunes).
	SaveSnapshot(ctx context.Context, actorID string, s persistence.Snapshot) error
	// LoadArchived returns a record archived by a snapshot, if any.
	LoadArchived(ctx context.Context, actorID string, key int64) (persistence.Archived, bool, error)
	// DueReminders returns up to limit reminders due before before.
	DueReminders(ctx context.Context, before time.Time, limit int) ([]persistence.Reminder, error)
	// LastSeq returns the highest sequence number stored for the actor
	// (event or snapshot), 0 for none: an actor's read fence.
	LastSeq(ctx context.Context, actorID string) (int64, error)
}

// Config is what a case needs from the store open returns.
type Config struct {
	// PruneAfterSnapshot: SaveSnapshot deletes the events it covers.
	PruneAfterSnapshot bool
	// SnapshotWriters is the number of concurrent SaveSnapshot calls
	// allowed; 0 means the store's default.
	SnapshotWriters int
}

// Batcher is implemented by stores that group calls into batches (one
// transaction for the calls of many actors).
type Batcher interface {
	// InOneBatch runs fn and makes every AppendAsync call fn makes be
	// written in one batch, in call order (e.g. by holding the writer until
	// fn has returned). fn makes at most 8 calls.
	InOneBatch(t *testing.T, fn func())
}

// Overloader is implemented by stores that can be driven into overload.
type Overloader interface {
	// Saturate fills the store so that the next AppendAsync is refused with
	// ErrOverloaded. release undoes it and returns when every call
	// Saturate itself made has completed successfully.
	Saturate(t *testing.T) (release func())
}

// SnapshotStaller is implemented by stores whose snapshot writer slots can
// be filled on purpose.
type SnapshotStaller interface {
	// OccupySnapshotWriters starts SaveSnapshot calls (for actor ids
	// beginning with "journaltest/") that hold every snapshot writer slot
	// until release, which lets them finish and returns when they have
	// succeeded.
	OccupySnapshotWriters(t *testing.T) (release func())
}

// Run runs every case of the contract as a subtest, each on a fresh store
// from open.
func Run(t *testing.T, open func(t *testing.T, cfg Config) Store) {
	cases := []struct {
		name string
		run  func(*testing.T, func(*testing.T, Config) Store)
	}{
		{"AppendReplayOrderAndPaging", appendReplayOrderAndPaging},
		{"InvalidCallsRefusedSynchronously", invalidCallsRefusedSynchronously},
		{"FenceOnExistingSeq", fenceOnExistingSeq},
		{"AllOrNothingPerCallInBatch", allOrNothingPerCallInBatch},
		{"Reminders", reminders},
		{"ReminderLastChangeInBatchWins", reminderLastChangeInBatchWins},
		{"SnapshotKeepsHighestSeq", snapshotKeepsHighestSeq},
		{"ArchiveWrittenWithSnapshot", archiveWrittenWithSnapshot},
		{"PruneAndFenceAfterPruning", pruneAndFenceAfterPruning},
		{"SnapshotBusy", snapshotBusy},
		{"OverloadRefusesSynchronously", overloadRefusesSynchronously},
		{"LastSeq", lastSeq},
		{"RecoverSnapshotThenEvents", recoverSnapshotThenEvents},
		{"RecoverManyAtOnce", recoverManyAtOnce},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, open) })
	}
}
