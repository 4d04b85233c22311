// Package persistence stores the event journal of the actors and the
// read-mostly catalog (users, concerts, dates, seats) in PostgreSQL.
//
// The journal (Journal) is append-only and keyed by (actor_id, seq): the
// primary key is the only guard against two live incarnations of one actor,
// and a write that hits an existing key fails with ErrFenced. Appends from
// many actors are group-committed: a few writer goroutines gather queued
// requests and write each batch with one INSERT ... SELECT FROM unnest
// statement (one round trip, atomic); a duplicate key aborts it, and the
// writer then fences the calls whose rows exist and writes the others again.
//
// Schema changes are embedded SQL files under migrations/, applied by Migrate
// with github.com/golang-migrate/migrate/v4 (pgx/v5 driver, iofs source),
// which serialises concurrent migrators with a PostgreSQL advisory lock.
//
// Package pgtest runs throwaway PostgreSQL servers and databases for tests.
package persistence
