package actors

import (
	"cmp"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/messages"
)

// SnapshotSize implements Sized: the tokens a snapshot holds.
func (m *queueModel) SnapshotSize() int { return len(m.byID) }

// Snapshot implements Model: ACTIVE tokens by id, WAIT tokens in line
// order, then the retained EXPIRED ones (payments, then others, each in
// expiry order). It holds the live tokens and at most 2 × ExpiredKeep
// expired ones, not the history.
//
// A live token's ExpiresAtMs is its idle deadline from the journaled last
// use (what the API shows); Restore derives the last use back from it, so
// the deadline survives a restart, even one that changes the TTLs: a
// recovered token expires at the deadline it was shown, or later if used
// again (at its use + the TTL now in force). Tokens issued, admitted or used
// after the restart expire at their own deadline under the TTL now in
// force: the idle orders keep recovered tokens apart (idleOrder), so a
// derived last use in the future never holds back the tokens behind it.
//
// The capture costs one pointer per token: each token's stored form is
// built once and shared, never mutated (a change replaces it), so the
// journal encodes the snapshot on another goroutine while the model moves
// on. Only tokens changed since the last snapshot are built again.
func (m *queueModel) Snapshot() proto.Message {
	n := m.active.Len() + m.line.Len() + m.paidGone.Len() + m.lapsedGone.Len()
	s := &messages.QueueSnapshot{NextTokenId: m.nextID, Tokens: make([]*messages.Token, 0, n)}
	add := func(t *qtoken) bool {
		if t.stored == nil {
			t.stored = &messages.Token{}
			m.fill(t.stored, t)
		}
		s.Tokens = append(s.Tokens, t.stored)
		return true
	}
	active := make([]*qtoken, 0, m.active.Len())
	for _, l := range m.active.lists() {
		for t := l.front(); t != nil; t = t.next {
			active = append(active, t)
		}
	}
	slices.SortFunc(active, func(a, b *qtoken) int { return cmp.Compare(a.id, b.id) })
	for _, t := range active {
		add(t)
	}
	m.line.each(add)
	for _, l := range []*tokenList{&m.paidGone, &m.lapsedGone} {
		for t := l.front(); t != nil; t = t.next {
			add(t)
		}
	}
	return s
}

// fill writes the stored form of t into v.
func (m *queueModel) fill(v *messages.Token, t *qtoken) {
	v.Id = t.id
	v.UserId = t.userID
	v.TokenDigest = storedDigest(t.digest)
	v.Status = t.status
	v.CreatedAtMs = t.createdMs
	v.UpdateAtMs = t.updatedMs
	v.ExpiresAtMs = m.expiresMs(t)
	v.ExpiredReason = t.storedReason()
}

// storedReason is the expiry reason kept in the stored form: only "paid"
// matters once expired (TokenCheck.PaidExpired).
func (t *qtoken) storedReason() string {
	if t.paid {
		return ExpiredReasonPaid
	}
	return ""
}

// Restore implements Model.
func (m *queueModel) Restore(snapshot proto.Message) error {
	s, ok := snapshot.(*messages.QueueSnapshot)
	if !ok {
		return fmt.Errorf("queue restore: snapshot is %T, want *messages.QueueSnapshot", snapshot)
	}
	m.reset()
	n := len(s.GetTokens())
	m.byID, m.byToken, m.byUser = make(map[int64]*qtoken, n), make(map[string]*qtoken, n), make(map[int64]*qtoken, n)
	m.nextID = s.GetNextTokenId()
	var waiting, active []*qtoken
	for _, v := range s.GetTokens() {
		t := &qtoken{
			id:        v.GetId(),
			userID:    v.GetUserId(),
			digest:    issuedDigest(v.GetTokenDigest(), v.GetToken()),
			status:    v.GetStatus(),
			createdMs: v.GetCreatedAtMs(),
			updatedMs: v.GetUpdateAtMs(),
			paid:      v.GetExpiredReason() == ExpiredReasonPaid,
		}
		if m.byToken[t.digest] != nil || m.byID[t.id] != nil {
			return fmt.Errorf("queue restore: token %d appears twice", t.id)
		}
		m.byID[t.id] = t
		m.byToken[t.digest] = t
		switch t.status {
		case messages.TokenStatus_TOKEN_WAIT:
			m.byUser[t.userID] = t
			m.line.push(t)
			waiting = append(waiting, t)
		case messages.TokenStatus_TOKEN_ACTIVE:
			m.byUser[t.userID] = t
			active = append(active, t)
		case messages.TokenStatus_TOKEN_EXPIRED:
			if t.paid {
				m.paidGone.pushBack(t)
			} else {
				m.lapsedGone.pushBack(t)
			}
		default:
			return fmt.Errorf("queue restore: token %d has status %v", t.id, t.status)
		}
		t.lastMs = t.updatedMs
		if t.status != messages.TokenStatus_TOKEN_EXPIRED && v.GetExpiresAtMs() != 0 {
			t.lastMs = v.GetExpiresAtMs() - m.ttl(t.status).Milliseconds()
		}
		// The entry's last use in memory must not come from that derived
		// lastMs: under a TTL lower than the one the deadline was shown
		// with, it lies in the future, so the token would count as used
		// until then whatever its status (an admission restarts lastMs, not
		// a last use that never moves back), and the feed would report that
		// use to other nodes. The last status change is a real time at or
		// before the last use; uses after the restart move it forward.
		t.entry = newTokenEntry(t.id, t.userID, msToNanos(min(t.lastMs, t.updatedMs)))
		if v.GetPosition() == 0 && v.GetExpiresAtMs() == m.expiresMs(t) && v.GetExpiredReason() == t.storedReason() &&
			v.GetToken() == "" {
			t.stored = v // already its stored form: share it
		}
	}
	m.waiting.restore(waiting)
	m.active.restore(active)
	for _, l := range []*tokenList{&m.paidGone, &m.lapsedGone} {
		for l.Len() > m.keepExpired {
			m.forget(l.front())
		}
	}
	return nil
}
