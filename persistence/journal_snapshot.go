package persistence

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// LoadSnapshot returns the actor's snapshot (Archive nil), or false if it
// has none.
func (j *Journal) LoadSnapshot(ctx context.Context, actorID string) (Snapshot, bool, error) {
	var s Snapshot
	err := j.pool.QueryRow(ctx,
		`SELECT seq, snapshot_type, payload FROM journal_snapshots WHERE actor_id = $1`,
		actorID).Scan(&s.Seq, &s.Type, &s.Payload)
	if errors.Is(err, pgx.ErrNoRows) {
		return Snapshot{}, false, nil
	}
	if err != nil {
		return Snapshot{}, false, fmt.Errorf("journal load snapshot %s: %w", actorID, classify(err))
	}
	return s, true, nil
}

// saveSnapshotSQL upserts the snapshot row only if it is newer than the
// stored one, and — only then, in the same statement, so atomically — the
// archived records ($6..$8). saveSnapshotPruneSQL also deletes the actor's
// events up to the previous snapshot (every sub-statement sees the table as
// it was before the statement, so prev is the snapshot being replaced).
const (
	saveSnapshotCTEs = `WITH snap AS (
INSERT INTO journal_snapshots (actor_id, seq, snapshot_type, payload, writer_id, created_at)
VALUES ($1, $2, $3, $4, $5, now())
ON CONFLICT (actor_id) DO UPDATE
SET seq = EXCLUDED.seq, snapshot_type = EXCLUDED.snapshot_type, payload = EXCLUDED.payload,
    writer_id = EXCLUDED.writer_id, created_at = EXCLUDED.created_at
WHERE journal_snapshots.seq < EXCLUDED.seq
RETURNING seq
), arc AS (
INSERT INTO journal_archive (actor_id, key, record_type, payload)
SELECT $1, a.k, a.t, a.p FROM snap, unnest($6::bigint[], $7::text[], $8::bytea[]) AS a(k, t, p)
ON CONFLICT (actor_id, key) DO UPDATE SET record_type = EXCLUDED.record_type, payload = EXCLUDED.payload
)`
	saveSnapshotSQL      = saveSnapshotCTEs + `SELECT count(*) FROM snap`
	saveSnapshotPruneSQL = saveSnapshotCTEs + `, prev AS (
SELECT seq FROM journal_snapshots WHERE actor_id = $1
), pruned AS (
DELETE FROM journal_events WHERE actor_id = $1 AND EXISTS (SELECT 1 FROM snap)
AND seq <= (SELECT seq FROM prev)
)
SELECT count(*) FROM snap`
)

// SaveSnapshot stores the actor's one snapshot row, only if s.Seq is newer
// than the stored one (an older or equal snapshot is ignored without error,
// archive included), together with s.Archive (upserted by key) and, with
// PruneAfterSnapshot, the deletion of the actor's events up to the
// snapshot it replaces — all in one transaction. From then on appends at or
// below s.Seq are fenced. s.Seq must not exceed the actor's last durable event.
//
// At most SnapshotWriters calls run at once: a call beyond that returns at
// once an error wrapping ErrSnapshotBusy, and nothing is written. A
// malformed call (see ValidateSnapshot) fails with ErrInvalid; a store
// failure wraps ErrUnavailable.
func (j *Journal) SaveSnapshot(ctx context.Context, actorID string, s Snapshot) error {
	if err := ValidateSnapshot(actorID, s); err != nil {
		return fmt.Errorf("journal save snapshot %q: %w", actorID, err)
	}
	select {
	case j.snapSlots <- struct{}{}:
		defer func() { <-j.snapSlots }()
	default:
		return fmt.Errorf("journal save snapshot %s: %w (%d running)", actorID, ErrSnapshotBusy, cap(j.snapSlots))
	}
	keys := make([]int64, len(s.Archive))
	types := make([]string, len(s.Archive))
	payloads := make([][]byte, len(s.Archive))
	for i, a := range s.Archive {
		keys[i], types[i], payloads[i] = a.Key, a.Type, nonNil(a.Payload)
	}
	q := saveSnapshotSQL
	if j.opts.PruneAfterSnapshot {
		q = saveSnapshotPruneSQL
	}
	_, err := j.pool.Exec(ctx, q, actorID, s.Seq, s.Type, nonNil(s.Payload), j.opts.WriterID,
		keys, types, payloads)
	if err != nil {
		return fmt.Errorf("journal save snapshot %s at %d: %w", actorID, s.Seq, classify(err))
	}
	return nil
}

// LoadArchived returns the record the actor archived under key with a
// snapshot, or false if there is none.
func (j *Journal) LoadArchived(ctx context.Context, actorID string, key int64) (Archived, bool, error) {
	a := Archived{Key: key}
	err := j.pool.QueryRow(ctx,
		`SELECT record_type, payload FROM journal_archive WHERE actor_id = $1 AND key = $2`,
		actorID, key).Scan(&a.Type, &a.Payload)
	if errors.Is(err, pgx.ErrNoRows) {
		return Archived{}, false, nil
	}
	if err != nil {
		return Archived{}, false, fmt.Errorf("journal load archived %s/%d: %w", actorID, key, classify(err))
	}
	return a, true, nil
}

// nonNil returns p, or an empty slice for nil (payload columns are NOT NULL).
func nonNil(p []byte) []byte {
	if p == nil {
		return []byte{}
	}
	return p
}
