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

// recoverSQL reads, for each actor of $1, its snapshot (flag true, if any)
// and the first page ($2 rows) of its events after the snapshot, in one
// statement and so from one consistent view of the tables.
const recoverSQL = `WITH a AS (SELECT DISTINCT unnest($1::text[]) AS id),
s AS (SELECT j.actor_id, j.seq, j.snapshot_type, j.payload FROM journal_snapshots j WHERE j.actor_id IN (SELECT id FROM a))
SELECT s.actor_id, true, s.seq, s.snapshot_type, s.payload FROM s
UNION ALL
SELECT a.id, false, e.seq, e.event_type, e.payload FROM a CROSS JOIN LATERAL (
  SELECT seq, event_type, payload FROM journal_events e
  WHERE e.actor_id = a.id AND e.seq > COALESCE((SELECT s.seq FROM s WHERE s.actor_id = a.id), 0)
  ORDER BY e.seq LIMIT $2) e`

// recoverTimeout bounds one recovery query (all the actors it serves): as
// long as an actor's own recovery may take (actors.recoverTimeout), since
// after a failover one query may serve thousands of actors.
const recoverTimeout = 30 * time.Second

// recoverCall is one Recover call waiting for its round's query.
type recoverCall struct {
	actorID string
	snap    *Snapshot
	events  []Event // the first page, in Seq order
	err     error
	done    chan struct{}
}

// Recover reads what an actor needs to start: its snapshot, if it has one,
// is handed to restore, then every event after it to apply, in Seq order,
// as LoadSnapshot and Replay would; restore and apply run on the caller's
// goroutine. The actors that start at the same time share one query (see
// readBatcher), which reads each one's snapshot and first page of events
// (1,000): a fan's first hold starts a wallet that has little or nothing to
// read, and the two queries per start this replaces were 17 % of the
// server's CPU in issue 8's fresh-holds profile. An actor with more events
// reads the rest page by page (Replay). Errors wrap ErrUnavailable (or
// ErrInvalid, or the context's error); an error from restore or apply stops
// it and is returned as is.
func (j *Journal) Recover(ctx context.Context, actorID string, restore func(Snapshot) error, apply func(Event) error) error {
	if err := validateActorID(actorID); err != nil {
		return fmt.Errorf("journal recover %q: %w", actorID, err)
	}
	c := &recoverCall{actorID: actorID, done: make(chan struct{})}
	j.recovers.add(c, j.answerRecovers)
	select {
	case <-c.done:
	case <-ctx.Done():
		return fmt.Errorf("journal recover %s: %w", actorID, ctx.Err())
	}
	if c.err != nil {
		return fmt.Errorf("journal recover %s: %w", actorID, c.err)
	}
	after := int64(0)
	if c.snap != nil {
		if err := restore(*c.snap); err != nil {
			return err
		}
		after = c.snap.Seq
	}
	for _, ev := range c.events {
		if err := apply(ev); err != nil {
			return err
		}
		after = ev.Seq
	}
	if len(c.events) < replayPage {
		return nil
	}
	return j.Replay(ctx, actorID, after, apply)
}

// answerRecovers answers one round of Recover calls with one query.
func (j *Journal) answerRecovers(calls []*recoverCall) {
	type found struct {
		snap   *Snapshot
		events []Event
		given  bool // handed to a call already
	}
	ids := make([]string, len(calls))
	for i, c := range calls {
		ids[i] = c.actorID
	}
	byActor := make(map[string]*found, len(calls))
	err := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), recoverTimeout)
		defer cancel()
		rows, err := j.pool.Query(ctx, recoverSQL, ids, replayPage)
		if err != nil {
			return classify(err)
		}
		var (
			id     string
			isSnap bool
			e      Event
		)
		_, err = pgx.ForEachRow(rows, []any{&id, &isSnap, &e.Seq, &e.Type, &e.Payload}, func() error {
			f := byActor[id]
			if f == nil {
				f = &found{}
				byActor[id] = f
			}
			if isSnap {
				f.snap = &Snapshot{Seq: e.Seq, Type: e.Type, Payload: e.Payload}
			} else {
				f.events = append(f.events, e)
			}
			e.Payload = nil // the next scan must not reuse the same array
			return nil
		})
		return classify(err)
	}()
	for _, f := range byActor {
		// UNION ALL and the lateral join keep each page's order in
		// practice, not by contract.
		slices.SortFunc(f.events, func(a, b Event) int { return cmp.Compare(a.Seq, b.Seq) })
	}
	for _, c := range calls {
		if err != nil {
			c.err = err
		} else if f := byActor[c.actorID]; f != nil {
			if f.given {
				// A second call for the same actor (two incarnations
				// starting at once) gets copies: a caller may change what
				// it is given.
				f.snap, f.events = copySnapshot(f.snap), copyEvents(f.events)
			}
			c.snap, c.events, f.given = f.snap, f.events, true
		}
		close(c.done)
	}
}

// copySnapshot is a copy of s sharing no bytes with it (nil for nil).
func copySnapshot(s *Snapshot) *Snapshot {
	if s == nil {
		return nil
	}
	c := *s
	c.Payload = slices.Clone(s.Payload)
	return &c
}

// copyEvents is a copy of events sharing no bytes with them.
func copyEvents(events []Event) []Event {
	out := slices.Clone(events)
	for i := range out {
		out[i].Payload = slices.Clone(out[i].Payload)
	}
	return out
}
