package actors

import (
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/messages"
)

// Last use is journaled in batches. Token checks on the HTTP path record a
// use in the token's table entry and list the entry for collection (at most
// once per collection); polls and re-issues handled by the queue manager
// record it the same way. Every tick the queue manager collects the uses and
// persists them as TokensTouched events, before it decides any expiry.
//
// Resolution: one collection interval (QueueConfig.tickInterval, at most
// 1 s). A batch records all its tokens as used at the latest use in it, so
// a journaled last use is at most one interval later than the real one; a
// crash loses at most the uses of the last interval (and of a write in
// flight). The expiresAt a client was shown is journaled before the reply,
// so a token never expires before it, across restarts too; it holds exactly
// unless the token was used since.

// queueTouchBatch bounds the token ids of one TokensTouched event.
const queueTouchBatch = 10_000

// touch records a use or a poll of a live token seen by the actor itself.
func (m *queueModel) touch(t *qtoken, now time.Time) {
	if t.status != messages.TokenStatus_TOKEN_EXPIRED && t.entry.touch(now.UnixNano()) {
		m.queueTouch(t)
	}
}

// queueTouch lists t for the next TokensTouched.
func (m *queueModel) queueTouch(t *qtoken) {
	if !t.touched {
		t.touched = true
		m.pendingTouch = append(m.pendingTouch, t)
	}
}

// touchEvents collects the uses reported to table since the last call and
// returns the events that journal every use not journaled yet (nil if
// none). The uses stay pending until touchesRecorded: call it once the
// events were accepted by Persist.
func (m *queueModel) touchEvents(table *TokenTable) []proto.Message {
	table.drainTouched(func(e *tokenEntry) {
		t := m.byID[e.tokenID]
		if t == nil || t.status == messages.TokenStatus_TOKEN_EXPIRED {
			return
		}
		if t.entry != e {
			t.entry.touch(e.last.Load()) // an earlier incarnation's entry
		}
		m.queueTouch(t)
	})
	var events []proto.Message
	var batch *messages.TokensTouched
	for _, t := range m.pendingTouch {
		if t.status == messages.TokenStatus_TOKEN_EXPIRED {
			continue
		}
		used := t.entry.last.Load() / int64(time.Millisecond)
		if used <= t.lastMs {
			continue
		}
		if batch == nil || len(batch.TokenIds) == queueTouchBatch {
			batch = &messages.TokensTouched{}
			events = append(events, batch)
		}
		batch.TokenIds = append(batch.TokenIds, t.id)
		batch.AtMs = max(batch.AtMs, used)
	}
	return events
}

// touchesRecorded clears the pending uses once their events are applied.
func (m *queueModel) touchesRecorded() {
	for _, t := range m.pendingTouch {
		t.touched = false
	}
	if cap(m.pendingTouch) > queueTouchBatch {
		m.pendingTouch = nil // a burst: do not keep its array
		return
	}
	clear(m.pendingTouch)
	m.pendingTouch = m.pendingTouch[:0]
}
