package actors

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/messages"
)

// queueChunk bounds the work of one decision: at most this many tokens
// expire, and at most this many are admitted, per tick or command. A mass
// expiry (say 233k idle tokens at once) is done in chunks, each after the
// previous one is durable, with other messages served in between.
const queueChunk = 1000

// qtoken is one token in the queue manager's state.
type qtoken struct {
	id, userID int64
	// digest is the key of the token's secret (digestOf: its SHA-256): the
	// secret itself is kept nowhere, neither here nor in the journal.
	digest    string
	status    messages.TokenStatus
	createdMs int64
	updatedMs int64 // last status change
	// lastMs is the last use (ACTIVE) or poll (WAIT) as journaled: the
	// admission, the issue, or a TokensTouched. Idle clocks run from it;
	// the API's expiresAt is lastMs + the TTL.
	lastMs int64
	paid   bool  // expired because its user paid
	lineNo int64 // place in waitLine while WAIT
	// prev, next and list place the token in one tokenList: one of the
	// lists of m.waiting or m.active (idleOrder) while live, m.paidGone or
	// m.lapsedGone by expiry once expired.
	prev, next *qtoken
	list       *tokenList
	touched    bool        // listed in m.pendingTouch
	entry      *tokenEntry // its table entry, published once durable
	// stored caches the token's stored form for snapshots; nil when stale.
	// It is never mutated once built (a snapshot may hold it while the
	// journal encodes it): a change drops it and the next snapshot builds a
	// new one.
	stored *messages.Token
}

// queueModel is the queue manager's domain state. Apply is its only mutator
// of journaled state. It holds the live (WAIT and ACTIVE) tokens and a
// bounded set of recently EXPIRED ones (at most keepExpired paid and
// keepExpired others, none older than retention), so its size follows the
// live line, not the history. Every structure is indexed: no operation but
// Snapshot, Restore and publishAll walks the live tokens.
type queueModel struct {
	// settings
	activeTokens int
	tokenIdle    time.Duration
	waitIdle     time.Duration
	retention    time.Duration
	keepExpired  int

	// journaled state
	nextID     int64
	byID       map[int64]*qtoken  // live and retained EXPIRED tokens
	byToken    map[string]*qtoken // the same, by the digest of their secret
	byUser     map[int64]*qtoken  // the user's live (WAIT or ACTIVE) token
	line       waitLine           // WAIT tokens, first come first served
	waiting    idleOrder          // WAIT tokens by lastMs
	active     idleOrder          // ACTIVE tokens by lastMs
	paidGone   tokenList          // retained EXPIRED tokens of payments, by expiry
	lapsedGone tokenList          // retained other EXPIRED tokens, by expiry

	// derived, not journaled
	publishing   bool          // recovered: record changes for the table
	changes      []tokenChange // applied, to publish once durable
	pendingTouch []*qtoken     // used or polled since the last TokensTouched
}

var (
	_ Model     = (*queueModel)(nil)
	_ Reminding = (*queueModel)(nil)
)

func newQueueModel(cfg QueueConfig) *queueModel {
	m := &queueModel{
		activeTokens: cfg.ActiveTokens,
		tokenIdle:    cfg.TokenIdleTTL,
		waitIdle:     cfg.WaitIdleTTL,
		retention:    cfg.ExpiredRetention,
		keepExpired:  cfg.ExpiredKeep,
	}
	m.reset()
	return m
}

func (m *queueModel) reset() {
	m.nextID = 0
	m.byID = map[int64]*qtoken{}
	m.byToken = map[string]*qtoken{}
	m.byUser = map[int64]*qtoken{}
	m.line = waitLine{}
	m.waiting, m.active = idleOrder{}, idleOrder{}
	m.paidGone, m.lapsedGone = tokenList{}, tokenList{}
	m.changes, m.pendingTouch = nil, nil
}

// ttl is the idle TTL of a token in status st (0 for EXPIRED).
func (m *queueModel) ttl(st messages.TokenStatus) time.Duration {
	switch st {
	case messages.TokenStatus_TOKEN_WAIT:
		return m.waitIdle
	case messages.TokenStatus_TOKEN_ACTIVE:
		return m.tokenIdle
	}
	return 0
}

// expiresMs is the expiry the API shows: for a live token its idle
// deadline from the journaled last use, for an EXPIRED one its expiry.
func (m *queueModel) expiresMs(t *qtoken) int64 {
	if t.status == messages.TokenStatus_TOKEN_EXPIRED {
		return t.updatedMs
	}
	return t.lastMs + m.ttl(t.status).Milliseconds()
}

// view is the token as callers see it: the stored token plus, while
// waiting, its position in line.
//
// ExpiresAtMs rests on the journaled last use, so once the reply is sent
// (after everything applied is durable) that expiry holds across restarts:
// the token never expires before it. It trails a use not yet reported by
// at most one collection interval (QueueConfig.tickInterval, ≤ 1 s).
func (m *queueModel) view(t *qtoken) *messages.Token {
	v := &messages.Token{}
	m.fill(v, t)
	v.TokenDigest = nil // callers get the secret, not how it is stored
	if t.status == messages.TokenStatus_TOKEN_WAIT {
		v.Position = m.line.position(t)
	}
	return v
}

// NextDue implements Reminding: while any token is live, the earliest idle
// deadline, so a crashed queue manager is woken to expire and admit without
// a request. The idle orders give their earliest lastMs in O(1).
func (m *queueModel) NextDue() (time.Time, bool) {
	due := int64(math.MaxInt64)
	if t := m.active.front(); t != nil {
		due = t.lastMs + m.tokenIdle.Milliseconds()
	}
	if t := m.waiting.front(); t != nil {
		due = min(due, t.lastMs+m.waitIdle.Milliseconds())
	}
	if due == math.MaxInt64 {
		return time.Time{}, false
	}
	return time.UnixMilli(due), true
}

// decideIssue answers IssueToken with a secret for the user's token: its
// live token (touched) with a fresh secret, the previous one ceasing to
// work — only a digest of a secret is kept, so a secret can be handed out
// once only — or a new token in line, activated in the same events if a
// slot is free. The events carry digests only; the secret goes to the
// caller alone.
func (m *queueModel) decideIssue(c *messages.IssueToken, now time.Time, random io.Reader) ([]proto.Message, string, *messages.Rejection) {
	if c.GetUserId() <= 0 {
		return nil, "", messages.Reject(messages.CodeInvalidRequest, "user id must be positive, not %d", c.GetUserId())
	}
	secret, err := m.newTokenString(random)
	if err != nil {
		return nil, "", messages.Reject(messages.CodeStoreUnavailable, "cannot issue a token: %v", err)
	}
	digest, nowMs := storedDigest(digestOf(secret)), now.UnixMilli()
	if t := m.byUser[c.GetUserId()]; t != nil {
		m.touch(t, now)
		return []proto.Message{&messages.TokenRekeyed{TokenId: t.id, TokenDigest: digest, AtMs: nowMs}}, secret, nil
	}
	id := m.nextID + 1
	events := []proto.Message{&messages.TokenIssued{TokenId: id, UserId: c.GetUserId(), TokenDigest: digest, AtMs: nowMs}}
	return append(events, m.admissions(nowMs, 0, nil, id)...), secret, nil
}

// digestOf is the key a token's secret is known by: its SHA-256, in
// unpadded base64url (text, so that it can travel in proto strings).
func digestOf(secret string) string {
	d := sha256.Sum256([]byte(secret))
	return base64.RawURLEncoding.EncodeToString(d[:])
}

// digestKey is the key of a stored digest (the 32 bytes of a journaled or
// snapshotted token_digest).
func digestKey(digest []byte) string { return base64.RawURLEncoding.EncodeToString(digest) }

// storedDigest is the inverse of digestKey, for the journal and snapshots.
func storedDigest(key string) []byte {
	b, _ := base64.RawURLEncoding.DecodeString(key)
	return b
}

// issuedDigest is the key of an issued token: its digest's, or that of the
// secret an event written before digests carried.
func issuedDigest(digest []byte, legacySecret string) string {
	if len(digest) > 0 {
		return digestKey(digest)
	}
	return digestOf(legacySecret)
}

func (m *queueModel) newTokenString(random io.Reader) (string, error) {
	b := make([]byte, queueTokenBytes)
	for range 4 {
		if _, err := io.ReadFull(random, b); err != nil {
			return "", fmt.Errorf("read random token: %w", err)
		}
		s := base64.RawURLEncoding.EncodeToString(b)
		if m.byToken[digestOf(s)] == nil {
			return s, nil
		}
	}
	return "", fmt.Errorf("random source keeps repeating itself")
}

// decideExpire expires a token (no events if it already is) and admits the
// head of the line into the slot it frees.
func (m *queueModel) decideExpire(t *qtoken, reason string, now time.Time) []proto.Message {
	nowMs := now.UnixMilli()
	switch t.status {
	case messages.TokenStatus_TOKEN_ACTIVE:
		return append([]proto.Message{&messages.TokenExpired{TokenId: t.id, AtMs: nowMs, Reason: reason}},
			m.admissions(nowMs, 1, nil, 0)...)
	case messages.TokenStatus_TOKEN_WAIT:
		return append([]proto.Message{&messages.TokenExpired{TokenId: t.id, AtMs: nowMs, Reason: reason}},
			m.admissions(nowMs, 0, map[int64]bool{t.id: true}, 0)...)
	}
	return nil
}

// decideTick expires, longest idle first, ACTIVE tokens unused for
// TokenIdleTTL and WAIT tokens not polled for WaitIdleTTL, and admits the
// line into the freed slots — at most queueChunk of each. more reports that
// work was left for another round.
//
// A token is idle by its journaled last use and also by its last use in
// memory, so a use that reached the table after the last TokensTouched
// still keeps it alive (it is journaled by the next collection).
func (m *queueModel) decideTick(now time.Time) (events []proto.Message, more bool) {
	nowMs, nowNs := now.UnixMilli(), now.UnixNano()
	budget, scanned := queueChunk, 0
	freed := 0
	var gone map[int64]bool
	// Each list of an order is in lastMs order: its scan stops at the
	// first token not due.
	sweep := func(o *idleOrder, ttl time.Duration, reason string) {
		for _, l := range o.lists() {
		scan:
			for t := l.front(); t != nil; t = t.next {
				switch {
				case t.lastMs+ttl.Milliseconds() > nowMs:
					break scan // the rest were used later
				case budget == 0 || scanned == 2*queueChunk:
					more = true
					return
				}
				scanned++
				if t.entry.last.Load()+int64(ttl) > nowNs {
					continue // used since the last report
				}
				budget--
				events = append(events, &messages.TokenExpired{TokenId: t.id, AtMs: nowMs, Reason: reason})
				if t.status == messages.TokenStatus_TOKEN_ACTIVE {
					freed++
				} else {
					if gone == nil {
						gone = map[int64]bool{}
					}
					gone[t.id] = true
				}
			}
		}
	}
	sweep(&m.active, m.tokenIdle, ExpiredReasonIdle)
	sweep(&m.waiting, m.waitIdle, ExpiredReasonAbandoned)
	admitted := m.admissions(nowMs, freed, gone, 0)
	if len(admitted) == queueChunk {
		more = true
	}
	return append(events, admitted...), more
}

// admissions activates heads of the line while slots are free, at most
// queueChunk. freed counts ACTIVE tokens expiring in the same events, gone
// the WAIT tokens leaving with them, and newID (if not 0) a token issued in
// the same events, last in line.
func (m *queueModel) admissions(nowMs int64, freed int, gone map[int64]bool, newID int64) []proto.Message {
	free := min(m.activeTokens-m.active.Len()+freed, queueChunk)
	if free <= 0 {
		return nil
	}
	var events []proto.Message
	m.line.each(func(t *qtoken) bool {
		if !gone[t.id] {
			events = append(events, &messages.TokenActivated{TokenId: t.id, AtMs: nowMs})
			free--
		}
		return free > 0
	})
	if free > 0 && newID != 0 {
		events = append(events, &messages.TokenActivated{TokenId: newID, AtMs: nowMs})
	}
	return events
}

// Apply implements Model.
func (m *queueModel) Apply(event proto.Message) {
	switch e := event.(type) {
	case *messages.TokenIssued:
		digest := issuedDigest(e.GetTokenDigest(), e.GetToken())
		if m.byID[e.GetTokenId()] != nil || m.byToken[digest] != nil {
			return // never issued twice; a duplicate must not corrupt the lists
		}
		t := &qtoken{
			id:        e.GetTokenId(),
			userID:    e.GetUserId(),
			digest:    digest,
			status:    messages.TokenStatus_TOKEN_WAIT,
			createdMs: e.GetAtMs(),
			updatedMs: e.GetAtMs(),
			lastMs:    e.GetAtMs(),
			entry:     newTokenEntry(e.GetTokenId(), e.GetUserId(), msToNanos(e.GetAtMs())),
		}
		m.nextID = max(m.nextID, t.id)
		m.byID[t.id] = t
		m.byToken[t.digest] = t
		m.byUser[t.userID] = t
		m.line.push(t)
		m.waiting.pushBack(t)
		m.changed(t)
	case *messages.TokenRekeyed:
		t := m.byID[e.GetTokenId()]
		digest := digestKey(e.GetTokenDigest())
		if t == nil || t.status == messages.TokenStatus_TOKEN_EXPIRED || len(digest) == 0 || m.byToken[digest] != nil {
			return
		}
		old := t.digest
		delete(m.byToken, old)
		t.digest = digest
		m.byToken[digest] = t
		t.stored = nil
		m.rekeyed(t, old)
	case *messages.TokenActivated:
		t := m.byID[e.GetTokenId()]
		if t == nil || t.status != messages.TokenStatus_TOKEN_WAIT {
			return
		}
		m.line.remove(t)
		t.list.remove(t)
		// The idle clock of an ACTIVE token starts when it is admitted.
		t.status, t.updatedMs, t.lastMs = messages.TokenStatus_TOKEN_ACTIVE, e.GetAtMs(), e.GetAtMs()
		t.stored = nil
		m.active.pushBack(t)
		m.changed(t)
	case *messages.TokenExpired:
		t := m.byID[e.GetTokenId()]
		if t == nil || t.status == messages.TokenStatus_TOKEN_EXPIRED {
			return
		}
		if t.status == messages.TokenStatus_TOKEN_WAIT {
			m.line.remove(t)
		}
		t.list.remove(t)
		if m.byUser[t.userID] == t {
			delete(m.byUser, t.userID)
		}
		t.status, t.updatedMs = messages.TokenStatus_TOKEN_EXPIRED, e.GetAtMs()
		t.paid = e.GetReason() == ExpiredReasonPaid
		t.stored = nil
		kept := &m.lapsedGone
		if t.paid {
			kept = &m.paidGone
		}
		kept.pushBack(t)
		m.changed(t)
		for kept.Len() > m.keepExpired {
			m.forget(kept.front())
		}
	case *messages.TokensTouched:
		// Uses are reported in time order, so moving a token to the back
		// keeps the recent lists in lastMs order (a clock stepping back only
		// makes a token expire that much later than its place would say).
		// A use before a token's lastMs (a recovered token whose deadline,
		// shown under a longer TTL, is later than this use + the TTL now)
		// leaves it where it is: it keeps the later deadline.
		for _, id := range e.GetTokenIds() {
			t := m.byID[id]
			if t == nil || t.status == messages.TokenStatus_TOKEN_EXPIRED || e.GetAtMs() <= t.lastMs {
				continue
			}
			t.lastMs = e.GetAtMs()
			t.stored = nil
			if t.status == messages.TokenStatus_TOKEN_WAIT {
				m.waiting.moveToBack(t)
			} else {
				m.active.moveToBack(t)
			}
		}
	}
}

// forget drops a retained EXPIRED token from the state and, once that is
// durable, from the table.
func (m *queueModel) forget(t *qtoken) {
	t.list.remove(t)
	delete(m.byID, t.id)
	delete(m.byToken, t.digest)
	if m.publishing {
		m.changes = append(m.changes, tokenChange{token: t.digest, entry: t.entry})
	}
}

// prune forgets EXPIRED tokens older than the retention, at most queueChunk
// of each kind per call. It is memory housekeeping, not a journaled change:
// an EXPIRED token past its retention is never reported again either way.
func (m *queueModel) prune(now time.Time) {
	limit := now.Add(-m.retention).UnixMilli()
	for _, l := range []*tokenList{&m.paidGone, &m.lapsedGone} {
		for n := 0; n < queueChunk && l.front() != nil && l.front().updatedMs <= limit; n++ {
			m.forget(l.front())
		}
	}
}

func msToNanos(ms int64) int64 { return ms * int64(time.Millisecond) }
