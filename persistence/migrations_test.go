package persistence_test

import (
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/concert/ticketing/persistence"
	"github.com/concert/ticketing/persistence/pgtest"
)

// TestMigration2DownAndUp checks that the down file of migration 000002
// removes what its up file creates, and that up can then run again.
func TestMigration2DownAndUp(t *testing.T) {
	pool := pgtest.NewDatabase(t)
	ctx := ctxT(t)
	run := func(file string) {
		t.Helper()
		sql, err := os.ReadFile("migrations/" + file)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, string(sql), pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	present := func() (n int) {
		t.Helper()
		err := pool.QueryRow(ctx, `SELECT (to_regclass('journal_reminders') IS NOT NULL)::int
	+ (to_regclass('journal_reminders_due_at') IS NOT NULL)::int
	+ (to_regclass('journal_archive') IS NOT NULL)::int
	+ (to_regprocedure('journal_pruned(text, bigint)') IS NOT NULL)::int`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := present(); n != 4 {
		t.Fatalf("after migrating: %d of 4 objects", n)
	}
	run("000002_reminders_archive.down.sql")
	if n := present(); n != 0 {
		t.Fatalf("after down: %d objects left", n)
	}
	run("000002_reminders_archive.up.sql")
	run("000002_reminders_archive.up.sql") // idempotent
	if n := present(); n != 4 {
		t.Fatalf("after up again: %d of 4 objects", n)
	}
	j := newJournal(t, pool, persistence.JournalOptions{PruneAfterSnapshot: true})
	if err := j.Append(ctx, "m", events(1, 1, "E"), persistence.ReminderChange{Clear: true}); err != nil {
		t.Fatal(err)
	}
}
