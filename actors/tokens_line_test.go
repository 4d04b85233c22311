package actors

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/messages"
)

// TestLineIndexPositions checks the index against a sorted slice through
// inserts in any order (a recovery), removals from anywhere and rebuilds.
func TestLineIndexPositions(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var l lineIndex
	var naive []int64 // sorted
	next := int64(5000)
	// A recovery: ids published in random order, then in descending order.
	for _, id := range rng.Perm(3000) {
		l.add(int64(id+2000), 1)
		naive = append(naive, int64(id+2000))
	}
	for id := int64(1999); id > 1000; id-- {
		l.add(id, 1)
		naive = append(naive, id)
	}
	slices.Sort(naive)
	check := func(step int) {
		t.Helper()
		if l.n != len(naive) {
			t.Fatalf("step %d: %d waiting, want %d", step, l.n, len(naive))
		}
		for i, id := range naive {
			if p := l.position(id); p != int64(i+1) {
				t.Fatalf("step %d: id %d at %d, want %d", step, id, p, i+1)
			}
		}
	}
	check(-1)
	for step := range 20000 {
		switch r := rng.IntN(10); {
		case len(naive) == 0 || r < 5: // a new token joins at the end
			next++
			l.add(next, 1)
			naive = append(naive, next)
		case r < 8: // admissions take the head
			l.add(naive[0], -1)
			naive = naive[1:]
		default: // abandoned anywhere
			k := rng.IntN(len(naive))
			l.add(naive[k], -1)
			naive = append(naive[:k], naive[k+1:]...)
		}
		if step%500 == 0 || len(naive) < 3 {
			check(step)
		}
	}
	check(20000)
	if l.position(next+10) != 0 || l.position(-5) != 0 {
		t.Fatal("an id not in line has a position")
	}
	// Out of the line entirely, then a fresh start far away.
	for _, id := range slices.Clone(naive) {
		l.add(id, -1)
	}
	naive = nil
	l.add(1<<40, 1)
	naive = []int64{1 << 40}
	check(-2)
	if len(l.fen) > 4*lineMinSlots+1 {
		t.Fatalf("a line of one holds %d slots", len(l.fen)-1)
	}
}

// TestTokenStateMatchesQueue drives the queue model with random issues,
// admissions and expiries and checks that the table shows every token's
// status and place in line as the queue manager reports them, that Version
// moves with each change, and that a table filled by a recovery shows the
// same.
func TestTokenStateMatchesQueue(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	m, table := queueGivenTable(50)
	var live []*qtoken
	nextID := int64(0)
	at := wqNow().UnixMilli()
	apply := func(events ...proto.Message) {
		before := table.Version()
		for _, e := range events {
			m.Apply(e)
		}
		table.apply(m.takeChanges())
		if table.Version() == before {
			t.Fatal("Version did not move with a change")
		}
	}
	compare := func(m *queueModel, tb *TokenTable, what string) {
		t.Helper()
		for _, q := range m.byID {
			st, ok := tb.State(fmt.Sprintf("tok%d", q.id)) // the secret issued() gave it
			if !ok {
				t.Fatalf("%s: token %d not in the table", what, q.id)
			}
			v := m.view(q)
			if st.Status != v.GetStatus() || st.Position != v.GetPosition() || st.TokenID != q.id || st.UserID != q.userID {
				t.Fatalf("%s: token %d shows %+v, queue says %v at %d", what, q.id, st, v.GetStatus(), v.GetPosition())
			}
		}
	}
	for step := range 3000 {
		at++
		switch r := rng.IntN(10); {
		case r < 5 || len(live) == 0:
			nextID++
			e := issued(nextID, nextID)
			apply(e)
			live = append(live, m.byID[nextID])
		case r < 7: // admit the head if a slot is free
			if ev := m.admissions(at, 0, nil, 0); len(ev) > 0 {
				apply(ev[0])
			}
		default: // expire any live token (paid, idle or abandoned)
			k := rng.IntN(len(live))
			q := live[k]
			live = append(live[:k], live[k+1:]...)
			if q.status != messages.TokenStatus_TOKEN_EXPIRED {
				apply(&messages.TokenExpired{TokenId: q.id, AtMs: at, Reason: ExpiredReasonIdle})
			}
		}
		if step%100 == 0 {
			compare(m, table, "live")
		}
	}
	compare(m, table, "live")
	if m.line.Len() < 100 {
		t.Fatalf("the test left only %d tokens in line", m.line.Len())
	}

	// A recovery publishes the end state into a new table in one pass.
	recovered := newQueueModel(QueueConfig{
		ActiveTokens: 50, TokenIdleTTL: time.Minute, WaitIdleTTL: 30 * time.Second, ExpiredRetention: time.Hour,
	}.withDefaults())
	if err := recovered.Restore(m.Snapshot()); err != nil {
		t.Fatal(err)
	}
	fresh := NewTokenTable()
	recovered.publishAll(fresh)
	compare(recovered, fresh, "recovered")
}

func TestKeepWaitingRecordsAPoll(t *testing.T) {
	m, table := queueGivenTable(1, issued(1, 1), &messages.TokenActivated{TokenId: 1}, issued(2, 2))
	later := wqNow().Add(time.Minute)
	if table.KeepWaiting("tok1", later) {
		t.Fatal("KeepWaiting kept an ACTIVE token")
	}
	if table.KeepWaiting("nope", later) {
		t.Fatal("KeepWaiting kept an unknown token")
	}
	if !table.KeepWaiting("tok2", later) {
		t.Fatal("KeepWaiting refused a WAIT token")
	}
	events := m.touchEvents(table)
	if len(events) != 1 {
		t.Fatalf("touch events %v, want one", events)
	}
	touched := events[0].(*messages.TokensTouched)
	if !slices.Equal(touched.GetTokenIds(), []int64{2}) || touched.GetAtMs() != later.UnixMilli() {
		t.Fatalf("touched %v", touched)
	}
}
