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

	// ErrInvalid means a malformed call (empty or non-UTF-8 actor id or
	// type, non-positive or non-contiguous sequence numbers, a reminder
	// change that both sets and clears, duplicate archive keys): a
	// programming error. Nothing was written.
	ErrInvalid = errors.New("invalid journal call")

	// ErrOverloaded means the journal could not take an append at once (its
	// queue is full): nothing was written and the call's done will never
	// run. It wraps ErrUnavailable, so errors.Is(err, ErrUnavailable) holds
	// too; the caller may retry later or shed the request.
	ErrOverloaded = fmt.Errorf("%w: journal overloaded", ErrUnavailable)

	// ErrSnapshotBusy means every snapshot writer slot
	// (JournalOptions.SnapshotWriters) is taken: the snapshot was not
	// written; save a newer one later. It does not wrap ErrUnavailable: the
	// store is fine, only busy.
	ErrSnapshotBusy = errors.New("journal snapshot writers busy")
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
