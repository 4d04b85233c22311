// Package actors holds the domain actors — seat (one per concert date),
// wallet (one per user) and queue manager (one) — and the event-sourcing
// mixin they share. Each actor processes one message at a time, so the
// domain code holds no locks; every state change is an event in the journal.
package actors

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/concert/ticketing/persistence"
)

// Journal is the storage an event-sourced actor needs; persistence.Journal
// (PostgreSQL) and actortest.MemJournal implement it.
//
// AppendAsync either refuses the call at once — an error wrapping
// persistence.ErrOverloaded (queue full; it matches ErrUnavailable) or an
// invalid-argument error; nothing was written and done is never called — or
// returns nil and later calls done exactly once from another goroutine: nil
// when all of the call's events (and its reminder change) are durable, an
// error wrapping persistence.ErrFenced when another incarnation already wrote
// one of these sequence numbers (nothing kept), or one wrapping
// persistence.ErrUnavailable (outcome unknown). Replay calls fn in sequence
// order for every event after afterSeq. SaveSnapshot writes the snapshot and
// its archived records in one transaction, or fails with
// persistence.ErrSnapshotBusy when too many saves run. LoadArchived reads a
// record archived by a snapshot. DueReminders lists reminders due before a
// time, earliest first. LastSeq returns the highest sequence number stored
// for an actor (0 for none), queried after the call: the read fence.
type Journal interface {
	AppendAsync(actorID string, events []persistence.Event, reminder persistence.ReminderChange, done func(error)) error
	Recover(ctx context.Context, actorID string, restore func(persistence.Snapshot) error, apply func(persistence.Event) error) error
	SaveSnapshot(ctx context.Context, actorID string, s persistence.Snapshot) error
	LoadArchived(ctx context.Context, actorID string, key int64) (persistence.Archived, bool, error)
	DueReminders(ctx context.Context, before time.Time, limit int) ([]persistence.Reminder, error)
	LastSeq(ctx context.Context, actorID string) (int64, error)
}

// Model is the domain state of an event-sourced actor.
//
// Apply is the only mutator: deterministic, no I/O, run alike for live events
// and for replayed ones. Snapshot returns the whole state; Restore replaces
// the state with a snapshot returned earlier.
type Model interface {
	Apply(event proto.Message)
	Snapshot() proto.Message
	Restore(snapshot proto.Message) error
}

// encode turns a protobuf message into a journal row's type and payload.
func encode(m proto.Message) (string, []byte, error) {
	payload, err := proto.Marshal(m)
	if err != nil {
		return "", nil, fmt.Errorf("encode %T: %w", m, err)
	}
	return string(m.ProtoReflect().Descriptor().FullName()), payload, nil
}

// decode is the inverse of encode, finding the Go type by its proto name.
func decode(typ string, payload []byte) (proto.Message, error) {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(typ))
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", typ, err)
	}
	m := mt.New().Interface()
	if err := proto.Unmarshal(payload, m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", typ, err)
	}
	return m, nil
}
