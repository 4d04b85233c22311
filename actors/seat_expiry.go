package actors

import "container/heap"

// expiryQueue is a min-heap of hold deadlines, the seat state's index for
// "which holds are due": peeking is O(1) and each push or pop O(log n), so
// the cost of a command does not grow with the holds already made.
//
// Entries are not removed when a hold ends (cancelled, paid, being paid):
// a stale entry is recognised and dropped when it reaches the top, by
// comparing it with the reservation it names. So the heap holds at most the
// holds made within one hold TTL.
type expiryQueue []expiryEntry

type expiryEntry struct {
	atMs int64 // the hold's ExpiresAtMs when the entry was pushed
	id   int64 // reservation id
}

func (q expiryQueue) Len() int { return len(q) }
func (q expiryQueue) Less(i, k int) bool {
	if q[i].atMs != q[k].atMs {
		return q[i].atMs < q[k].atMs
	}
	return q[i].id < q[k].id
}
func (q expiryQueue) Swap(i, k int) { q[i], q[k] = q[k], q[i] }
func (q *expiryQueue) Push(x any)   { *q = append(*q, x.(expiryEntry)) }
func (q *expiryQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

func (q *expiryQueue) push(atMs, id int64) { heap.Push(q, expiryEntry{atMs: atMs, id: id}) }

// top returns the earliest entry for which valid holds, dropping the stale
// entries above it.
func (q *expiryQueue) top(valid func(expiryEntry) bool) (expiryEntry, bool) {
	for q.Len() > 0 {
		e := (*q)[0]
		if valid(e) {
			return e, true
		}
		heap.Pop(q)
	}
	return expiryEntry{}, false
}

func (q *expiryQueue) pop() { heap.Pop(q) }
