package actors

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/concert/ticketing/messages"
)

// tokenShards is the number of independently locked parts of a TokenTable.
// Readers only take a shard's read lock, so a power of two comfortably above
// the core count keeps them from queueing behind the queue manager's writes.
const tokenShards = 64

// TokenTable is the fast path of token validation: every reservation and
// payment request reads it without messaging the queue manager.
//
// It is a derived view of the queue manager's journal: only the queue
// manager writes it, and only state that is durable — an admission or an
// expiry appears once its event is written, never before, and a write that
// fails publishes nothing. When the queue manager recovers it publishes the
// recovered end state in one pass, not the states replay goes through.
//
// Readers may use it from any goroutine. Check records an ACTIVE token's
// use in the entry and reports the entry to the queue manager at most once
// per collection (see queueModel.touchEvents), so validation never waits for
// the actor and the actor's cost follows the tokens used, not the checks.
type TokenTable struct {
	seed    maphash.Seed
	shards  [tokenShards]tokenShard
	waiting atomic.Int64
	active  atomic.Int64
	// line and version serve the followers of tokens (tokens_line.go).
	line    lineIndex
	version atomic.Uint64
}

type tokenShard struct {
	mu sync.RWMutex
	m  map[string]*tokenEntry
	// ids holds the key each published token is known by now, for the
	// token ids of this shard (idShard): a follower of a secret that was
	// replaced finds its token there (StateByID). Guarded by mu, never
	// taken together with another shard's.
	ids map[int64]string
	// touchMu guards touched: entries used since the queue manager last
	// collected them, each listed once (tokenEntry.queued).
	touchMu sync.Mutex
	touched []*tokenEntry
	_       [64]byte // keep neighbouring shards' locks off one cache line
}

// tokenEntry is one token as readers see it. The queue manager creates it
// with the token and publishes it (puts it in the table) once the token's
// issue is durable. Identity fields never change; status and paid are the
// published (durable) state, written only by the queue manager; last is the
// token's last use or poll in memory, written by Check and by the queue
// manager, and reported to the journal in batches.
type tokenEntry struct {
	tokenID int64
	userID  int64
	status  atomic.Int32 // messages.TokenStatus; 0 until published
	paid    atomic.Bool  // expired because its user paid
	last    atomic.Int64 // unix nanoseconds of the last use (ACTIVE) or poll (WAIT)
	queued  atomic.Bool  // listed in its shard's touched list
}

// newTokenEntry returns an unpublished entry last used at lastNanos.
func newTokenEntry(tokenID, userID, lastNanos int64) *tokenEntry {
	e := &tokenEntry{tokenID: tokenID, userID: userID}
	e.last.Store(lastNanos)
	return e
}

// TokenCheck is what Check knows about a token.
type TokenCheck struct {
	TokenID, UserID int64
	Status          messages.TokenStatus
	PaidExpired     bool // expired because its user paid
}

// NewTokenTable returns an empty table.
func NewTokenTable() *TokenTable {
	t := &TokenTable{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = map[string]*tokenEntry{}
		t.shards[i].ids = map[int64]string{}
	}
	return t
}

// Check looks a token up and, when ACTIVE, records the use (for idle expiry).
// It reports false for a token the table does not know (never issued, or
// expired and no longer retained by the queue manager).
//
// The table knows tokens by the digest of their secret (digestOf), so a
// check costs one SHA-256 of the presented token; an empty token is unknown.
func (t *TokenTable) Check(token string, now time.Time) (TokenCheck, bool) {
	if token == "" {
		return TokenCheck{}, false
	}
	return t.checkKey(digestOf(token), now)
}

// ErrUnknownToken is Lookup's answer for a token nobody knows: never
// issued, or expired and no longer retained by the queue manager.
var ErrUnknownToken = errors.New("unknown token")

// Lookup is Check in the booking service's terms: ErrUnknownToken for a
// token the table does not know. A table answers from memory, so ctx is
// not used; it is there for TokenFeed, which may ask another node.
func (t *TokenTable) Lookup(_ context.Context, token string, now time.Time) (TokenCheck, error) {
	if c, ok := t.Check(token, now); ok {
		return c, nil
	}
	return TokenCheck{}, ErrUnknownToken
}

// checkKey is Check of a token known by its key (digestOf).
func (t *TokenTable) checkKey(key string, now time.Time) (TokenCheck, bool) {
	s := t.shard(key)
	s.mu.RLock()
	e := s.m[key]
	s.mu.RUnlock()
	if e == nil {
		return TokenCheck{}, false
	}
	st := messages.TokenStatus(e.status.Load())
	if st == messages.TokenStatus_TOKEN_ACTIVE && e.touch(now.UnixNano()) {
		s.report(e)
	}
	return TokenCheck{
		TokenID:     e.tokenID,
		UserID:      e.userID,
		Status:      st,
		PaidExpired: st == messages.TokenStatus_TOKEN_EXPIRED && e.paid.Load(),
	}, true
}

// Waiting returns the number of WAIT tokens published.
func (t *TokenTable) Waiting() int { return int(t.waiting.Load()) }

// Active returns the number of ACTIVE tokens published.
func (t *TokenTable) Active() int { return int(t.active.Load()) }

func (t *TokenTable) shard(token string) *tokenShard {
	return &t.shards[maphash.String(t.seed, token)%tokenShards]
}

// idShard is the shard whose ids holds tokenID.
func (t *TokenTable) idShard(tokenID int64) *tokenShard {
	return &t.shards[uint64(tokenID)%tokenShards]
}

// setKey records that tokenID is known by key now.
func (t *TokenTable) setKey(tokenID int64, key string) {
	s := t.idShard(tokenID)
	s.mu.Lock()
	s.ids[tokenID] = key
	s.mu.Unlock()
}

// dropKey forgets tokenID if it is known by key (not if it has moved on to
// another key since).
func (t *TokenTable) dropKey(tokenID int64, key string) {
	s := t.idShard(tokenID)
	s.mu.Lock()
	if s.ids[tokenID] == key {
		delete(s.ids, tokenID)
	}
	s.mu.Unlock()
}

// The methods below are the queue manager's: one writer at a time.

// tokenChange is one durable change to publish: the entry of token (the
// digest of its secret) moves to status (paid), or leaves the table when
// status is 0; or, when rekeyedFrom is set, the entry known by that digest
// is known by token instead.
type tokenChange struct {
	token       string
	entry       *tokenEntry
	status      messages.TokenStatus
	paid        bool
	rekeyedFrom string
}

// apply publishes changes in order.
func (t *TokenTable) apply(changes []tokenChange) {
	for _, c := range changes {
		if c.rekeyedFrom != "" {
			t.rekey(c.rekeyedFrom, c.token, c.entry)
			continue
		}
		if c.status == 0 {
			t.unpublish(c.token, c.entry)
		} else {
			t.publish(c.token, c.entry, c.status, c.paid)
		}
	}
}

// publish makes e the table's entry for token, in status st. An entry of an
// earlier incarnation that it replaces hands its last use on, so uses not
// yet journaled are not lost when the queue manager is replaced in-process.
func (t *TokenTable) publish(token string, e *tokenEntry, st messages.TokenStatus, paid bool) {
	old := messages.TokenStatus(e.status.Load())
	if paid {
		e.paid.Store(true)
	}
	e.status.Store(int32(st)) // before readers can find it
	if old == 0 {
		s := t.shard(token)
		s.mu.Lock()
		prev := s.m[token]
		s.m[token] = e
		s.mu.Unlock()
		t.setKey(e.tokenID, token)
		if prev != nil && prev != e {
			e.touch(prev.last.Load())
			t.count(prev, messages.TokenStatus(prev.status.Load()), -1)
		}
	}
	t.count(e, old, -1)
	t.count(e, st, 1)
}

// rekey moves e from key old to key new (the token's new secret); its
// status and counts do not change. The new key is in before the old one is
// out, so the token is never missing (its old secret may pass for that
// moment). An entry not published yet is left to its publication.
func (t *TokenTable) rekey(old, new string, e *tokenEntry) {
	s := t.shard(old)
	s.mu.RLock()
	found := s.m[old] == e
	s.mu.RUnlock()
	if !found {
		return
	}
	n := t.shard(new)
	n.mu.Lock()
	n.m[new] = e
	n.mu.Unlock()
	t.setKey(e.tokenID, new) // before the old key leaves: the token is always found by id
	s.mu.Lock()
	if s.m[old] == e {
		delete(s.m, old)
	}
	s.mu.Unlock()
	t.version.Add(1) // a follower of the old secret looks again, and finds it gone
}

// unpublish removes token's entry if it is e.
func (t *TokenTable) unpublish(token string, e *tokenEntry) {
	s := t.shard(token)
	s.mu.Lock()
	found := s.m[token] == e
	if found {
		delete(s.m, token)
	}
	s.mu.Unlock()
	if found {
		t.dropKey(e.tokenID, token)
		t.count(e, messages.TokenStatus(e.status.Load()), -1)
	}
}

// reserve makes room for n entries if the table is empty (a process that
// just started) and reports whether it was.
func (t *TokenTable) reserve(n int) bool {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.RLock()
		size := len(s.m)
		s.mu.RUnlock()
		if size > 0 {
			return false
		}
	}
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		if len(s.m) == 0 {
			s.m = make(map[string]*tokenEntry, n/tokenShards+n/(4*tokenShards))
		}
		s.mu.Unlock()
	}
	return true
}

// retain forgets every entry for which keep returns false.
func (t *TokenTable) retain(keep func(token string, e *tokenEntry) bool) {
	for i := range t.shards {
		s := &t.shards[i]
		var gone []*tokenEntry
		var keys []string
		s.mu.Lock()
		for token, e := range s.m {
			if !keep(token, e) {
				delete(s.m, token)
				gone = append(gone, e)
				keys = append(keys, token)
			}
		}
		s.mu.Unlock()
		for i, e := range gone {
			t.dropKey(e.tokenID, keys[i])
			t.count(e, messages.TokenStatus(e.status.Load()), -1)
		}
	}
}

// count adds d tokens in status st, e's; a WAIT token also joins (d > 0)
// or leaves the line index. Every call is a published change (Version).
func (t *TokenTable) count(e *tokenEntry, st messages.TokenStatus, d int64) {
	switch st {
	case messages.TokenStatus_TOKEN_WAIT:
		t.waiting.Add(d)
		t.line.add(e.tokenID, d)
	case messages.TokenStatus_TOKEN_ACTIVE:
		t.active.Add(d)
	}
	t.version.Add(1)
}
