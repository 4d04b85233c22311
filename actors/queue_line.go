package actors

import (
	"cmp"
	"slices"
)

// waitLine is the FIFO of WAIT tokens. Each token gets the next line number;
// a Fenwick tree over line numbers counts the tokens still waiting ahead of
// one, so a position costs O(log n) however many left the line from its
// middle. The arrays are compacted (O(n)) only when they fill up.
type waitLine struct {
	base  int64     // line number of slots[0]
	slots []*qtoken // by line number - base; nil once the token left
	head  int       // no token before this index
	fen   []int32   // Fenwick tree over slots, 1-based, len(fen) = capacity+1
	size  int
}

// Len is the number of tokens waiting.
func (l *waitLine) Len() int { return l.size }

func (l *waitLine) push(t *qtoken) {
	if len(l.slots)+1 >= len(l.fen) {
		l.compact()
	}
	i := len(l.slots)
	t.lineNo = l.base + int64(i)
	l.slots = append(l.slots, t)
	l.add(i, 1)
	l.size++
}

func (l *waitLine) remove(t *qtoken) {
	i := int(t.lineNo - l.base)
	if i < 0 || i >= len(l.slots) || l.slots[i] != t {
		return
	}
	l.slots[i] = nil
	l.add(i, -1)
	l.size--
	for l.head < len(l.slots) && l.slots[l.head] == nil {
		l.head++
	}
}

// position is the 1-based place of a waiting token.
func (l *waitLine) position(t *qtoken) int64 {
	i := int(t.lineNo - l.base)
	if i < 0 || i >= len(l.slots) || l.slots[i] != t {
		return 0
	}
	var sum int64
	for k := i + 1; k > 0; k -= k & -k {
		sum += int64(l.fen[k])
	}
	return sum
}

// each calls fn for the waiting tokens from the head until it returns false.
func (l *waitLine) each(fn func(*qtoken) bool) {
	for _, t := range l.slots[l.head:] {
		if t != nil && !fn(t) {
			return
		}
	}
}

func (l *waitLine) add(i int, d int32) {
	for k := i + 1; k < len(l.fen); k += k & -k {
		l.fen[k] += d
	}
}

// compact drops the slots of tokens that left, renumbers the rest and
// rebuilds the tree with room for as many again.
func (l *waitLine) compact() {
	live := make([]*qtoken, 0, 2*l.size+16)
	for _, t := range l.slots[l.head:] {
		if t != nil {
			live = append(live, t)
		}
	}
	l.base += int64(len(l.slots))
	for i, t := range live {
		t.lineNo = l.base + int64(i)
	}
	l.slots, l.head = live, 0
	// Linear Fenwick build: each node passes its sum to its parent, over the
	// whole capacity so that empty nodes forward what they received.
	l.fen = make([]int32, cap(live)+1)
	for i := range live {
		l.fen[i+1] = 1
	}
	for k := 1; k < len(l.fen); k++ {
		if p := k + k&-k; p < len(l.fen) {
			l.fen[p] += l.fen[k]
		}
	}
}

// tokenList is an intrusive doubly linked list of tokens, used for the
// orders the queue manager scans from the oldest: live tokens by last use
// (idle expiry) and retained EXPIRED tokens by expiry (retention). Every
// operation is O(1); a token is in at most one list.
type tokenList struct {
	head, tail *qtoken
	n          int
}

// Len is the number of tokens in the list.
func (l *tokenList) Len() int { return l.n }

// front is the oldest token, or nil.
func (l *tokenList) front() *qtoken { return l.head }

// pushBack appends t (which must not be in a list).
func (l *tokenList) pushBack(t *qtoken) {
	t.list, t.prev, t.next = l, l.tail, nil
	if l.tail != nil {
		l.tail.next = t
	} else {
		l.head = t
	}
	l.tail = t
	l.n++
}

// remove takes t out of the list; it does nothing if t is not in it.
func (l *tokenList) remove(t *qtoken) {
	if t.list != l {
		return
	}
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		l.head = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	} else {
		l.tail = t.prev
	}
	t.list, t.prev, t.next = nil, nil, nil
	l.n--
}

// moveToBack makes t (in the list) the newest.
func (l *tokenList) moveToBack(t *qtoken) {
	if l.tail == t {
		return
	}
	l.remove(t)
	l.pushBack(t)
}

// idleOrder holds the live tokens of one status by lastMs, for idle expiry
// and NextDue: a due token is found from the fronts, never by a scan. It is
// two lists, each in lastMs order, and due tokens are looked for in both:
//
//   - recent: tokens placed since the model was built (issued, admitted or
//     used, live or by replayed events). Events come in time order, so
//     appending keeps it ordered (to within one collection interval).
//   - restored: tokens recovered from a snapshot, sorted once by Restore.
//
// They cannot be one list. Restore derives a token's lastMs from the
// deadline the API showed, under the TTL of the time (so that deadline
// holds); after a restart that lowered the TTL it lies in the future, after
// the tokens issued since, and appended behind it they would wait for it
// (the fresh tester's case: new tokens lived until the old deadlines).
type idleOrder struct {
	recent, restored tokenList
}

// Len is the number of tokens in the order.
func (o *idleOrder) Len() int { return o.recent.Len() + o.restored.Len() }

// front is the token with the earliest lastMs, or nil.
func (o *idleOrder) front() *qtoken {
	a, b := o.recent.front(), o.restored.front()
	if a == nil || (b != nil && b.lastMs < a.lastMs) {
		return b
	}
	return a
}

// lists are the two lists, each in lastMs order.
func (o *idleOrder) lists() [2]*tokenList { return [2]*tokenList{&o.restored, &o.recent} }

// pushBack places t (in no list), just used at t.lastMs, the newest.
func (o *idleOrder) pushBack(t *qtoken) { o.recent.pushBack(t) }

// moveToBack places t (in the order), just used at t.lastMs, the newest.
func (o *idleOrder) moveToBack(t *qtoken) {
	t.list.remove(t)
	o.recent.pushBack(t)
}

// restore sets the order to tokens, recovered from a snapshot.
func (o *idleOrder) restore(tokens []*qtoken) {
	slices.SortStableFunc(tokens, func(a, b *qtoken) int { return cmp.Compare(a.lastMs, b.lastMs) })
	for _, t := range tokens {
		o.restored.pushBack(t)
	}
}
