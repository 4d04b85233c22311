package persistence

import "sync"

// readBatcher gathers the reads of many actors (LastSeq, Recover) into one
// query at a time: every call made while a query runs waits for the next
// one, which serves them all. So a thousand actors starting or confirming
// at once cost a few round trips, not a thousand, and no linger delays a
// lone call. A call never joins a query already running: what it reads
// must include every write acknowledged before it was made.
type readBatcher[C any] struct {
	mu      sync.Mutex
	running bool
	pending []C
}

// add queues c; answer, run on a goroutine of the batcher's, gets each
// round's calls until none is left.
func (b *readBatcher[C]) add(c C, answer func([]C)) {
	b.mu.Lock()
	b.pending = append(b.pending, c)
	lead := !b.running
	b.running = true
	b.mu.Unlock()
	if lead {
		go b.run(answer)
	}
}

func (b *readBatcher[C]) run(answer func([]C)) {
	for {
		b.mu.Lock()
		calls := b.pending
		b.pending = nil
		if len(calls) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		answer(calls)
	}
}
