package actors

import (
	"math/bits"
	"sync"
	"time"

	"github.com/concert/ticketing/messages"
)

// The token table also answers, from any goroutine and without a message
// to the queue manager, what a follower of one token needs: its published
// status and its place in line (State), whether anything changed since it
// last looked (Version), and a way to count an open follower as a poll
// (KeepWaiting). The token streams of the HTTP API read it for thousands
// of tokens at a time.
//
// Places in line: the line is first come, first served, and token ids are
// issued in increasing order, so a WAIT token's place is the number of WAIT
// tokens whose id is not greater than its own. lineIndex keeps the WAIT
// tokens' ids in a Fenwick tree, updated with the published counts, so a
// place costs O(log n) however many tokens left the line before it.

// TokenState is what the table shows of one token.
type TokenState struct {
	TokenID, UserID int64
	Status          messages.TokenStatus
	PaidExpired     bool // expired because its user paid
	// Position is the token's 1-based place in line while WAIT; 0 otherwise
	// (and, for an instant while a WAIT token is being published, 0 too:
	// read it again after Version changes).
	Position int64
}

// State returns a token's published status and place in line, without
// recording a use. It reports false for a token the table does not know
// (token is the secret a client presents; the table knows its digest).
func (t *TokenTable) State(token string) (TokenState, bool) {
	if token == "" {
		return TokenState{}, false
	}
	key := digestOf(token)
	s := t.shard(key)
	s.mu.RLock()
	e := s.m[key]
	s.mu.RUnlock()
	if e == nil {
		return TokenState{}, false
	}
	return t.stateOf(e), true
}

// StateByID returns the published status and place in line of the token
// tokenID, whatever secret it is known by now: a follower of a secret that
// no longer works learns whether its token lives on under a fresh one (its
// user asked for the token again) or has left the table (expired, and no
// longer retained). It reports false for a token the table does not know.
func (t *TokenTable) StateByID(tokenID int64) (TokenState, bool) {
	is := t.idShard(tokenID)
	is.mu.RLock()
	key, ok := is.ids[tokenID]
	is.mu.RUnlock()
	if !ok {
		return TokenState{}, false
	}
	s := t.shard(key)
	s.mu.RLock()
	e := s.m[key]
	s.mu.RUnlock()
	if e == nil || e.tokenID != tokenID {
		return TokenState{}, false
	}
	return t.stateOf(e), true
}

// stateOf is what the table shows of e.
func (t *TokenTable) stateOf(e *tokenEntry) TokenState {
	st := messages.TokenStatus(e.status.Load())
	ts := TokenState{TokenID: e.tokenID, UserID: e.userID, Status: st}
	switch st {
	case messages.TokenStatus_TOKEN_WAIT:
		ts.Position = t.line.position(e.tokenID)
	case messages.TokenStatus_TOKEN_EXPIRED:
		ts.PaidExpired = e.paid.Load()
	}
	return ts
}

// Version changes (grows) after every change the table publishes: a
// status, a token joining or leaving the table, and so any place in line.
// A follower that read Version before State sees every later change by
// reading Version again.
func (t *TokenTable) Version() uint64 { return t.version.Load() }

// KeepWaiting records a poll of a WAIT token, as GET /users/token does:
// the token stays in line while it is followed (WaitIdleTTL runs from its
// last poll). It reports false, and does nothing, for a token that is not
// waiting. The poll reaches the journal with the queue manager's next
// collection of token uses.
func (t *TokenTable) KeepWaiting(token string, now time.Time) bool {
	if token == "" {
		return false
	}
	key := digestOf(token)
	s := t.shard(key)
	s.mu.RLock()
	e := s.m[key]
	s.mu.RUnlock()
	if e == nil || messages.TokenStatus(e.status.Load()) != messages.TokenStatus_TOKEN_WAIT {
		return false
	}
	if e.touch(now.UnixNano()) {
		s.report(e)
	}
	return true
}

// lineIndex counts the WAIT tokens by id (see above). Its arrays cover the
// ids from base on, with room for as many again as the span of the ids in
// line; they are rebuilt, O(span), when an id falls outside.
type lineIndex struct {
	mu   sync.RWMutex
	base int64    // token id of slot 0
	bits []uint64 // slot i set: token base+i is waiting
	fen  []int32  // Fenwick tree over the slots, 1-based: len 64·len(bits)+1
	n    int      // tokens waiting
}

// lineMinSlots is the smallest capacity of a lineIndex.
const lineMinSlots = 1024

func (l *lineIndex) add(id int64, d int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d > 0 {
		l.insert(id)
	} else {
		l.remove(id)
	}
}

func (l *lineIndex) insert(id int64) {
	if l.n == 0 && len(l.bits) > 0 {
		// Every slot is clear: start over at id, in small arrays.
		if len(l.bits)*64 > 4*lineMinSlots {
			l.bits, l.fen = nil, nil
		}
		l.base = id
	}
	if len(l.bits) == 0 || id < l.base || id-l.base >= int64(len(l.bits))*64 {
		l.rebuild(id)
	}
	i := id - l.base
	w, b := i/64, uint64(1)<<(i%64)
	if l.bits[w]&b != 0 {
		return
	}
	l.bits[w] |= b
	l.n++
	for k := i + 1; k < int64(len(l.fen)); k += k & -k {
		l.fen[k]++
	}
}

func (l *lineIndex) remove(id int64) {
	i := id - l.base
	if i < 0 || i >= int64(len(l.bits))*64 {
		return
	}
	w, b := i/64, uint64(1)<<(i%64)
	if l.bits[w]&b == 0 {
		return
	}
	l.bits[w] &^= b
	l.n--
	for k := i + 1; k < int64(len(l.fen)); k += k & -k {
		l.fen[k]--
	}
}

// position is the 1-based place of id in line, 0 if it is not waiting.
func (l *lineIndex) position(id int64) int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	i := id - l.base
	if i < 0 || i >= int64(len(l.bits))*64 || l.bits[i/64]&(uint64(1)<<(i%64)) == 0 {
		return 0
	}
	var sum int64
	for k := i + 1; k > 0; k -= k & -k {
		sum += int64(l.fen[k])
	}
	return sum
}

// rebuild re-lays the arrays so that they cover id and every waiting id,
// with room for as many ids again past the highest (the line grows at its
// end) and, when id extends it downwards (a recovery publishes in any
// order), as many below the lowest.
func (l *lineIndex) rebuild(id int64) {
	lo, hi := id, id
	for w, word := range l.bits {
		for word != 0 {
			b := int64(bits.TrailingZeros64(word))
			word &= word - 1
			v := l.base + int64(w)*64 + b
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	span := hi - lo + 1
	base := lo
	if len(l.bits) > 0 && id < l.base {
		base = max(lo-span, 0)
	}
	slots := max(hi-base+1+span, lineMinSlots)
	words := (slots + 63) / 64
	set := make([]uint64, words)
	for w, word := range l.bits {
		for word != 0 {
			b := int64(bits.TrailingZeros64(word))
			word &= word - 1
			i := l.base + int64(w)*64 + b - base
			set[i/64] |= uint64(1) << (i % 64)
		}
	}
	fen := make([]int32, words*64+1)
	for k := int64(1); k < int64(len(fen)); k++ {
		if set[(k-1)/64]&(uint64(1)<<((k-1)%64)) != 0 {
			fen[k]++
		}
		if p := k + (k & -k); p < int64(len(fen)) {
			fen[p] += fen[k]
		}
	}
	l.base, l.bits, l.fen = base, set, fen
}
