package persistence

import (
	"context"
	"errors"
	"fmt"
)

// lastSeqTimeout bounds one LastSeq query (all the actors it serves).
const lastSeqTimeout = batchTimeout

// lastSeqSQL reads the highest sequence number stored for each actor of $1:
// its newest event, or its snapshot if pruning left no event above it
// (never the case today, but a fence must not trust that), 0 for none.
const lastSeqSQL = `SELECT a.id,
  GREATEST(COALESCE((SELECT max(e.seq) FROM journal_events e WHERE e.actor_id = a.id), 0),
           COALESCE((SELECT s.seq FROM journal_snapshots s WHERE s.actor_id = a.id), 0))
FROM unnest($1::text[]) AS a(id)`

// ValidateActorID checks an actor id as every journal method does: nil or
// an error wrapping ErrInvalid.
func ValidateActorID(actorID string) error { return validateActorID(actorID) }

type lastSeqCall struct {
	actorID string
	seq     int64
	err     error
	done    chan struct{}
}

// LastSeq returns the highest sequence number stored for the actor (0 if
// none): what a journal read made now would recover. It is how an actor
// that has not written for a while confirms that no other incarnation wrote
// since (a read fence). The query is issued after the call is made, never
// shared with a query already running. Errors wrap ErrUnavailable (or
// ErrInvalid for a bad id, or the context's error).
func (j *Journal) LastSeq(ctx context.Context, actorID string) (int64, error) {
	if err := validateActorID(actorID); err != nil {
		return 0, fmt.Errorf("journal last seq %q: %w", actorID, err)
	}
	c := &lastSeqCall{actorID: actorID, done: make(chan struct{})}
	j.lastSeq.add(c, j.answerLastSeqs)
	select {
	case <-c.done:
		return c.seq, c.err
	case <-ctx.Done():
		return 0, fmt.Errorf("journal last seq %s: %w", actorID, ctx.Err())
	}
}

// answerLastSeqs answers one round of LastSeq calls with one query.
func (j *Journal) answerLastSeqs(calls []*lastSeqCall) {
	seqs, err := j.queryLastSeqs(calls)
	for _, c := range calls {
		c.seq, c.err = seqs[c.actorID], err
		if err != nil {
			c.seq, c.err = 0, fmt.Errorf("journal last seq %s: %w", c.actorID, err)
		}
		close(c.done)
	}
}

func (j *Journal) queryLastSeqs(calls []*lastSeqCall) (map[string]int64, error) {
	ids := make([]string, 0, len(calls))
	seen := make(map[string]bool, len(calls))
	for _, c := range calls {
		if !seen[c.actorID] {
			seen[c.actorID] = true
			ids = append(ids, c.actorID)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), lastSeqTimeout)
	defer cancel()
	rows, err := j.pool.Query(ctx, lastSeqSQL, ids)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	seqs := make(map[string]int64, len(ids))
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return nil, classify(err)
		}
		seqs[id] = seq
	}
	if err := rows.Err(); err != nil {
		return nil, classify(err)
	}
	if len(seqs) != len(ids) {
		return nil, classify(errors.New("last seq: rows missing"))
	}
	j.metrics.lastSeqQueries.Inc()
	j.metrics.lastSeqActors.Add(float64(len(ids)))
	return seqs, nil
}
