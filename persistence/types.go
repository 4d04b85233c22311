package persistence

import "time"

// Event is one journal row of an actor. Seq starts at 1 and is contiguous
// per actor; Type names the payload's message type.
type Event struct {
	Seq     int64
	Type    string
	Payload []byte
}

// Snapshot is the latest saved state of an actor, covering events up to Seq.
//
// Archive lists the records that leave the actor's state with this snapshot
// (closed reservations, old payments): SaveSnapshot stores them, keyed by
// (actor, Key), in the same transaction as the snapshot, and LoadArchived
// reads them back. Keys must be unique within one snapshot. LoadSnapshot
// leaves Archive nil.
type Snapshot struct {
	Seq     int64
	Type    string
	Payload []byte
	Archive []Archived
}

// Archived is one record moved out of an actor's state by a snapshot. Key is
// the caller's id of the record (a reservation id, a payment id), unique per
// actor; Type names the payload's message type.
type Archived struct {
	Key     int64
	Type    string
	Payload []byte
}

// ReminderChange is an optional update of an actor's reminder (a durable
// wake-up, Orleans-style) written in the same transaction as the events of
// one append: it is applied if and only if those events are. The zero value
// changes nothing. Set and Clear together are invalid, and so is Set with a
// zero DueAt.
type ReminderChange struct {
	Set   bool      // upsert the actor's reminder to DueAt
	DueAt time.Time // stored with microsecond precision
	Clear bool      // delete the actor's reminder
}

// IsZero reports whether c changes nothing.
func (c ReminderChange) IsZero() bool { return !c.Set && !c.Clear }

// Reminder is one stored reminder: wake ActorID at DueAt (microsecond
// precision, UTC).
type Reminder struct {
	ActorID string
	DueAt   time.Time
}
