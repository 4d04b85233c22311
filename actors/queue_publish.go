package actors

import "github.com/concert/ticketing/messages"

// The queue manager keeps the TokenTable as a view of durable state only:
// Apply records what each event changed (while publishing), the actor takes
// those changes after each Persist and hands them to the table in a
// Journaled.AfterDurable action, which runs once the events are written and
// never if the write fails. Replay records nothing; publishAll then
// publishes the recovered end state in one pass.

// changed records t's current state for the table, once durable.
func (m *queueModel) changed(t *qtoken) {
	if m.publishing {
		m.changes = append(m.changes, tokenChange{token: t.digest, entry: t.entry, status: t.status, paid: t.paid})
	}
}

// rekeyed records that t is now known by its digest instead of old, once
// durable.
func (m *queueModel) rekeyed(t *qtoken, old string) {
	if m.publishing {
		m.changes = append(m.changes, tokenChange{token: t.digest, entry: t.entry, status: t.status, paid: t.paid, rekeyedFrom: old})
	}
}

// takeChanges returns the changes recorded since the last call.
func (m *queueModel) takeChanges() []tokenChange {
	c := m.changes
	m.changes = nil
	return c
}

// publishAll makes table show exactly the model's tokens (the end state of
// a recovery) and starts recording changes. An entry of an earlier
// incarnation hands its last use to the new one (TokenTable.publish); a use
// it knew of that the journal does not is reported with the next
// collection.
func (m *queueModel) publishAll(table *TokenTable) {
	m.publishing, m.changes = true, nil
	fresh := table.reserve(len(m.byID))
	for _, t := range m.byID {
		table.publish(t.digest, t.entry, t.status, t.paid)
		if t.status != messages.TokenStatus_TOKEN_EXPIRED && t.entry.last.Load() > msToNanos(t.lastMs) {
			m.queueTouch(t)
		}
	}
	if fresh {
		return // nothing else to forget
	}
	table.retain(func(token string, e *tokenEntry) bool {
		t := m.byToken[token]
		return t != nil && t.entry == e
	})
}
