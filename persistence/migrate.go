package persistence

import (
	"context"
	"embed"
	"errors"
	"fmt"

	"github.com/golang-migrate/migrate/v4"
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// migrationsFS holds the schema as numbered golang-migrate files
// (NNNNNN_name.up.sql / .down.sql). Each file runs as one multi-statement
// simple query, which PostgreSQL executes atomically.
//
//go:embed migrations/*.sql
var migrationsFS embed.FS

// Migrate applies the embedded migrations that the database lacks. It is
// idempotent, and safe when several processes start at once: golang-migrate's
// pgx/v5 driver holds a session-level pg_advisory_lock (keyed by database,
// schema and table name) on a dedicated connection while it reads and moves
// the version recorded in schema_migrations. Cancelling ctx stops it between
// two migrations.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	src, err := iofs.New(migrationsFS, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: open embedded migrations: %w", err)
	}
	// Closing db (done by the driver's Close) does not close pool.
	db := stdlib.OpenDBFromPool(pool)
	drv, err := pgxmigrate.WithInstance(db, &pgxmigrate.Config{})
	if err != nil {
		_ = db.Close()
		_ = src.Close()
		return fmt.Errorf("migrate: connect: %w", classify(err))
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", drv)
	if err != nil {
		_ = drv.Close()
		_ = src.Close()
		return fmt.Errorf("migrate: %w", err)
	}
	stop := context.AfterFunc(ctx, func() {
		select {
		case m.GracefulStop <- true:
		default:
		}
	})
	defer stop()
	err = m.Up()
	srcErr, dbErr := m.Close()
	if errors.Is(err, migrate.ErrNoChange) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("migrate up: %w", err)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("migrate up: %w", ctxErr)
	}
	if srcErr != nil {
		return fmt.Errorf("migrate: close source: %w", srcErr)
	}
	if dbErr != nil {
		return fmt.Errorf("migrate: close database: %w", dbErr)
	}
	return nil
}
