package actors

import "time"

// touchGranularity bounds how often a hot token's last use is rewritten:
// idle expiry runs on a scale of seconds, and skipping sub-millisecond
// updates keeps concurrent checks of one token from fighting over its cache
// line.
const touchGranularity = int64(time.Millisecond)

// touch moves last forward to n and reports whether it did; it never moves
// it back, so concurrent checks with slightly older clocks cannot shorten a
// token's life.
func (e *tokenEntry) touch(n int64) bool {
	for {
		old := e.last.Load()
		if n < old+touchGranularity {
			return false
		}
		if e.last.CompareAndSwap(old, n) {
			return true
		}
	}
}

// report lists e for the queue manager's next collection, unless it is
// listed already: one atomic load per check in the common case, and a short
// lock at most once per token per collection.
func (s *tokenShard) report(e *tokenEntry) {
	if e.queued.Load() || !e.queued.CompareAndSwap(false, true) {
		return
	}
	s.touchMu.Lock()
	s.touched = append(s.touched, e)
	s.touchMu.Unlock()
}

// drainTouched calls fn for every entry used since the last drain (the
// queue manager's collection); fn reads the entry's last use. An entry used
// again during the drain is listed again for the next one.
func (t *TokenTable) drainTouched(fn func(e *tokenEntry)) {
	for i := range t.shards {
		s := &t.shards[i]
		s.touchMu.Lock()
		list := s.touched
		s.touched = nil
		s.touchMu.Unlock()
		for _, e := range list {
			// Clear the mark before fn reads last: a use after this point
			// lists the entry again rather than being missed.
			e.queued.Store(false)
			fn(e)
		}
	}
}
