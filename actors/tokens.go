package actors

import (
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
// It is derived state: only the queue manager actor writes it, in step with
// every event it applies, and rebuilds it when it recovers. Readers may use
// it from any goroutine. Check records an ACTIVE token's last use in an
// atomic the queue manager reads for idle expiry, so validation never waits
// for the actor.
type TokenTable struct {
	seed    maphash.Seed
	shards  [tokenShards]tokenShard
	waiting atomic.Int64
	active  atomic.Int64
}

type tokenShard struct {
	mu sync.RWMutex
	m  map[string]*tokenEntry
	_  [40]byte // keep neighbouring shards' locks off one cache line
}

// tokenEntry is one token as readers see it. Identity fields never change;
// status, paid and last are written by the queue manager (last also by
// Check) and read by anyone.
type tokenEntry struct {
	tokenID int64
	userID  int64
	status  atomic.Int32 // messages.TokenStatus
	paid    atomic.Bool  // expired because its user paid
	last    atomic.Int64 // unix nanoseconds of the last use (ACTIVE) or poll (WAIT)
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
	}
	return t
}

// Check looks a token up and, when ACTIVE, records the use (for idle expiry).
// It reports false for a token the table does not know (never issued, or
// expired longer ago than the queue's retention).
func (t *TokenTable) Check(token string, now time.Time) (TokenCheck, bool) {
	e := t.get(token)
	if e == nil {
		return TokenCheck{}, false
	}
	st := messages.TokenStatus(e.status.Load())
	if st == messages.TokenStatus_TOKEN_ACTIVE {
		e.touch(now.UnixNano())
	}
	return TokenCheck{
		TokenID:     e.tokenID,
		UserID:      e.userID,
		Status:      st,
		PaidExpired: st == messages.TokenStatus_TOKEN_EXPIRED && e.paid.Load(),
	}, true
}

// Waiting returns the current length of the waiting line.
func (t *TokenTable) Waiting() int { return int(t.waiting.Load()) }

// Active returns the number of tokens currently ACTIVE.
func (t *TokenTable) Active() int { return int(t.active.Load()) }

func (t *TokenTable) shard(token string) *tokenShard {
	return &t.shards[maphash.String(t.seed, token)%tokenShards]
}

func (t *TokenTable) get(token string) *tokenEntry {
	s := t.shard(token)
	s.mu.RLock()
	e := s.m[token]
	s.mu.RUnlock()
	return e
}

// The methods below are the queue manager's: one writer at a time.

// put adds a token in status st, last used at lastNanos.
func (t *TokenTable) put(token string, tokenID, userID int64, st messages.TokenStatus, paid bool, lastNanos int64) *tokenEntry {
	e := &tokenEntry{tokenID: tokenID, userID: userID}
	e.status.Store(int32(st))
	e.paid.Store(paid)
	e.last.Store(lastNanos)
	s := t.shard(token)
	s.mu.Lock()
	old := s.m[token]
	s.m[token] = e
	s.mu.Unlock()
	if old != nil {
		t.count(messages.TokenStatus(old.status.Load()), -1)
	}
	t.count(st, 1)
	return e
}

// setStatus moves an entry to another status, keeping the counters right.
func (t *TokenTable) setStatus(e *tokenEntry, st messages.TokenStatus, paid bool) {
	old := messages.TokenStatus(e.status.Load())
	if paid {
		e.paid.Store(true)
	}
	e.status.Store(int32(st))
	t.count(old, -1)
	t.count(st, 1)
}

// remove forgets a token.
func (t *TokenTable) remove(token string) {
	s := t.shard(token)
	s.mu.Lock()
	e := s.m[token]
	delete(s.m, token)
	s.mu.Unlock()
	if e != nil {
		t.count(messages.TokenStatus(e.status.Load()), -1)
	}
}

// retain forgets every token for which keep returns false.
func (t *TokenTable) retain(keep func(token string) bool) {
	for i := range t.shards {
		s := &t.shards[i]
		var gone []*tokenEntry
		s.mu.Lock()
		for token, e := range s.m {
			if !keep(token) {
				delete(s.m, token)
				gone = append(gone, e)
			}
		}
		s.mu.Unlock()
		for _, e := range gone {
			t.count(messages.TokenStatus(e.status.Load()), -1)
		}
	}
}

func (t *TokenTable) count(st messages.TokenStatus, d int64) {
	switch st {
	case messages.TokenStatus_TOKEN_WAIT:
		t.waiting.Add(d)
	case messages.TokenStatus_TOKEN_ACTIVE:
		t.active.Add(d)
	}
}

// touchGranularity bounds how often a hot token's last use is rewritten:
// idle expiry runs on a scale of seconds, and skipping sub-millisecond
// updates keeps concurrent checks of one token from fighting over its cache
// line.
const touchGranularity = int64(time.Millisecond)

// touch moves last forward to n; it never moves it back, so concurrent
// checks with slightly older clocks cannot shorten a token's life.
func (e *tokenEntry) touch(n int64) {
	for {
		old := e.last.Load()
		if n < old+touchGranularity || e.last.CompareAndSwap(old, n) {
			return
		}
	}
}
