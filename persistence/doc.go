// Package persistence stores the event journal of the actors and the
// read-mostly catalog (users, concerts, dates, seats) in PostgreSQL.
//
// The journal (Journal) is append-only and keyed by (actor_id, seq): the
// primary key is the only guard against two live incarnations of one actor,
// and a write that hits an existing key fails with ErrFenced. Appends from
// many actors are group-committed: a few writer goroutines gather queued
// calls and write each batch with one INSERT ... SELECT FROM unnest
// statement (one round trip, atomic); a duplicate key aborts it, and the
// writer then fences the calls whose rows exist and writes the others again.
// An append can carry a change of the actor's reminder (a durable wake-up,
// listed by DueReminders), written in the same statement through
// data-modifying CTEs. AppendAsync never blocks: a full queue refuses the
// call at once with ErrOverloaded.
//
// Each actor has at most one snapshot row (the newest wins). A snapshot can
// archive records that leave the actor's state (LoadArchived reads them) and,
// with PruneAfterSnapshot, delete the events it covers; appends at or below
// a pruned snapshot are then fenced by the batch statement itself. At most
// SnapshotWriters snapshots are written at once (ErrSnapshotBusy beyond).
//
// Package journaltest holds the journal's contract, run against this
// journal and the in-memory one of actors/actortest.
//
// Schema changes are embedded SQL files under migrations/, applied by Migrate
// with github.com/golang-migrate/migrate/v4 (pgx/v5 driver, iofs source),
// which serialises concurrent migrators with a PostgreSQL advisory lock.
//
// Package pgtest runs throwaway PostgreSQL servers and databases for tests.
package persistence
