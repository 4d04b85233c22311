package persistence

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

var (
	// ErrFenced means a row with the same (actor_id, seq) already exists:
	// another incarnation of this actor wrote first. None of the rows of the
	// failed call were kept. The caller must stop serving (passivate the
	// actor) and let a fresh incarnation recover from the journal.
	ErrFenced = errors.New("journal fenced: sequence number already written")

	// ErrUnavailable means the store could not be reached or the write or
	// read failed for a reason that is not the caller's: a refused or broken
	// connection, a timeout, a server shutting down. Errors returned by this
	// package wrap it (check with errors.Is) together with the cause. A failed
	// Append's outcome may be unknown (a commit whose reply was lost): replay
	// before writing again.
	ErrUnavailable = errors.New("store unavailable")

	// ErrNotFound is returned by the catalog look-ups when no row has the id.
	ErrNotFound = errors.New("not found")

	// errInvalidAppend is returned for malformed calls (empty actor id,
	// non-contiguous or non-positive sequence numbers): programming errors.
	errInvalidAppend = errors.New("invalid append")
)

// unavailable wraps cause so that both errors.Is(err, ErrUnavailable) and
// errors.Is(err, cause) hold.
func unavailable(cause error) error {
	if errors.Is(cause, ErrUnavailable) {
		return cause
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, cause)
}

// classify translates a driver error once: connection-level failures and
// timeouts become ErrUnavailable; SQL errors that point at a bug (syntax,
// constraint, type) stay as they are; a caller's cancellation stays as is.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case len(pgErr.Code) >= 2 && pgErr.Code[:2] == "08", // connection exception
			len(pgErr.Code) >= 2 && pgErr.Code[:2] == "53",                      // insufficient resources
			len(pgErr.Code) >= 2 && pgErr.Code[:2] == "58",                      // system error (I/O)
			pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03", // shutdown, crash, cannot connect now
			pgErr.Code == "57014": // query canceled (statement_timeout)
			return unavailable(err)
		}
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	// Everything else the driver reports without a server error is a
	// network, timeout, or closed-pool failure.
	return unavailable(err)
}
