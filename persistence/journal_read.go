package persistence

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Replay calls fn for each event of the actor with Seq > afterSeq, in Seq
// order, reading pages of 1000 rows so that a long journal is never all in
// memory; fn runs while no connection is held. An error from fn stops the
// replay and is returned as is. With PruneAfterSnapshot the events at or
// below the actor's snapshot are gone: recover from LoadSnapshot, then
// replay after its Seq.
func (j *Journal) Replay(ctx context.Context, actorID string, afterSeq int64, fn func(Event) error) error {
	page := make([]Event, 0, replayPage)
	for {
		rows, err := j.pool.Query(ctx,
			`SELECT seq, event_type, payload FROM journal_events
WHERE actor_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, actorID, afterSeq, replayPage)
		if err != nil {
			return fmt.Errorf("journal replay %s after %d: %w", actorID, afterSeq, classify(err))
		}
		page = page[:0]
		var e Event
		_, err = pgx.ForEachRow(rows, []any{&e.Seq, &e.Type, &e.Payload}, func() error {
			page = append(page, e)
			e.Payload = nil // the next scan must not reuse the same array
			return nil
		})
		if err != nil {
			return fmt.Errorf("journal replay %s after %d: %w", actorID, afterSeq, classify(err))
		}
		for _, ev := range page {
			if err := fn(ev); err != nil {
				return err
			}
			afterSeq = ev.Seq
		}
		if len(page) < replayPage {
			return nil
		}
	}
}

// DueReminders returns up to limit (> 0) stored reminders due strictly before
// before, ordered by DueAt then ActorID. It does not remove them: an actor
// clears or moves its reminder with its next append.
func (j *Journal) DueReminders(ctx context.Context, before time.Time, limit int) ([]Reminder, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("journal due reminders: %w: limit %d ≤ 0", ErrInvalid, limit)
	}
	rows, err := j.pool.Query(ctx, `SELECT actor_id, due_at FROM journal_reminders
WHERE due_at < $1 ORDER BY due_at, actor_id LIMIT $2`, before, limit)
	if err != nil {
		return nil, fmt.Errorf("journal due reminders before %s: %w", before.Format(time.RFC3339Nano), classify(err))
	}
	var (
		out []Reminder
		r   Reminder
	)
	_, err = pgx.ForEachRow(rows, []any{&r.ActorID, &r.DueAt}, func() error {
		r.DueAt = r.DueAt.UTC()
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("journal due reminders before %s: %w", before.Format(time.RFC3339Nano), classify(err))
	}
	return out, nil
}

// recoverSQL reads an actor's snapshot (flag true, if any) and the first
// page of its events after the snapshot, in one statement and so from one
// consistent view of the tables.
const recoverSQL = `WITH s AS (SELECT seq, snapshot_type, payload FROM journal_snapshots WHERE actor_id = $1)
SELECT true, seq, snapshot_type, payload FROM s
UNION ALL
(SELECT false, e.seq, e.event_type, e.payload FROM journal_events e
WHERE e.actor_id = $1 AND e.seq > COALESCE((SELECT seq FROM s), 0)
ORDER BY e.seq LIMIT $2)`

// Recover reads what an actor needs to start: its snapshot, if it has one,
// is handed to restore, then every event after it to apply, in Seq order,
// as LoadSnapshot and Replay would. An actor whose events fit one page
// (1,000) costs one query instead of two: a fan's first hold activates a
// wallet that has little or nothing to read (issue 8's fresh-holds
// profile: the two queries were 17 % of the server's CPU). An error from
// restore or apply stops it and is returned as is.
func (j *Journal) Recover(ctx context.Context, actorID string, restore func(Snapshot) error, apply func(Event) error) error {
	rows, err := j.pool.Query(ctx, recoverSQL, actorID, replayPage)
	if err != nil {
		return fmt.Errorf("journal recover %s: %w", actorID, classify(err))
	}
	var (
		snap    Snapshot
		hasSnap bool
		page    = make([]Event, 0, 8)
		isSnap  bool
		e       Event
	)
	_, err = pgx.ForEachRow(rows, []any{&isSnap, &e.Seq, &e.Type, &e.Payload}, func() error {
		if isSnap {
			snap, hasSnap = Snapshot{Seq: e.Seq, Type: e.Type, Payload: e.Payload}, true
		} else {
			page = append(page, e)
		}
		e.Payload = nil // the next scan must not reuse the same array
		return nil
	})
	if err != nil {
		return fmt.Errorf("journal recover %s: %w", actorID, classify(err))
	}
	after := int64(0)
	if hasSnap {
		if err := restore(snap); err != nil {
			return err
		}
		after = snap.Seq
	}
	// UNION ALL keeps each branch's order in practice, not by contract.
	slices.SortFunc(page, func(a, b Event) int { return cmp.Compare(a.Seq, b.Seq) })
	for _, ev := range page {
		if err := apply(ev); err != nil {
			return err
		}
		after = ev.Seq
	}
	if len(page) < replayPage {
		return nil
	}
	return j.Replay(ctx, actorID, after, apply)
}
