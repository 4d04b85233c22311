package actors

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/actors/actortest"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// TestQueueExpiredSetIsBounded checks that EXPIRED tokens leave the state
// beyond ExpiredKeep of each kind (payments, others), in the snapshot and
// the table too, while the newest stay reported.
func TestQueueExpiredSetIsBounded(t *testing.T) {
	m := newQueueModel(QueueConfig{ActiveTokens: 1, ExpiredKeep: 5}.withDefaults())
	table := NewTokenTable()
	m.publishAll(table)
	for id := int64(1); id <= 40; id++ {
		m.Apply(issued(id, id))
	}
	for id := int64(1); id <= 32; id++ {
		reason := ExpiredReasonAbandoned
		if id > 20 {
			reason = ExpiredReasonPaid
		}
		m.Apply(&messages.TokenExpired{TokenId: id, AtMs: id, Reason: reason})
	}
	table.apply(m.takeChanges())
	if m.paidGone.Len() != 5 || m.lapsedGone.Len() != 5 || len(m.byID) != 18 || len(m.byToken) != 18 {
		t.Fatalf("paid %d lapsed %d byID %d byToken %d", m.paidGone.Len(), m.lapsedGone.Len(), len(m.byID), len(m.byToken))
	}
	snap := m.Snapshot().(*messages.QueueSnapshot)
	if len(snap.GetTokens()) != 18 {
		t.Fatalf("snapshot holds %d tokens, want 8 live + 10 expired", len(snap.GetTokens()))
	}
	for tok, want := range map[string]bool{"tok1": false, "tok15": false, "tok16": true, "tok20": true, "tok27": false, "tok28": true, "tok33": true} {
		if _, ok := table.Check(tok, wqNow()); ok != want {
			t.Fatalf("%s in the table: %v, want %v", tok, ok, want)
		}
	}
	if c, _ := table.Check("tok32", wqNow()); !c.PaidExpired {
		t.Fatal("the newest paid token lost its paid mark")
	}
	// A smaller bound at restore applies at once.
	r := newQueueModel(QueueConfig{ActiveTokens: 1, ExpiredKeep: 2}.withDefaults())
	if err := r.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if r.paidGone.Len() != 2 || r.lapsedGone.Len() != 2 || r.byToken[digestOf("tok20")] == nil || r.byToken[digestOf("tok18")] != nil {
		t.Fatalf("restored with a smaller bound: paid %d lapsed %d", r.paidGone.Len(), r.lapsedGone.Len())
	}
}

// queueWaiting builds a model with one fresh ACTIVE token and n-1 WAIT
// tokens issued at wqNow.
func queueWaiting(n int, cfg QueueConfig) *queueModel {
	cfg.ActiveTokens = 1
	m := newQueueModel(cfg.withDefaults())
	ms := wqNow().UnixMilli()
	for id := int64(1); id <= int64(n); id++ {
		m.Apply(&messages.TokenIssued{TokenId: id, UserId: id, Token: fmt.Sprintf("tok-%012d", id), AtMs: ms})
	}
	m.Apply(&messages.TokenActivated{TokenId: 1, AtMs: ms + 1})
	return m
}

// TestQueueMassExpiryInChunks checks that a mass expiry is decided in
// chunks of at most queueChunk, longest idle first, each reporting whether
// work is left.
func TestQueueMassExpiryInChunks(t *testing.T) {
	const n = 2*queueChunk + 500
	m := queueWaiting(n, QueueConfig{TokenIdleTTL: time.Hour, WaitIdleTTL: time.Minute})
	later := wqNow().Add(time.Minute)
	total := 0
	for round := 0; ; round++ {
		events, more := m.decideTick(later)
		if len(events) > queueChunk {
			t.Fatalf("round %d decided %d events", round, len(events))
		}
		if round == 0 && events[0].(*messages.TokenExpired).GetTokenId() != 2 {
			t.Fatalf("first expiry %v, want the longest waiting", events[0])
		}
		for _, e := range events {
			m.Apply(e)
		}
		total += len(events)
		if !more {
			break
		}
		if round > 3 {
			t.Fatal("more work reported for ever")
		}
	}
	if total != n-1 || m.line.Len() != 0 || m.active.Len() != 1 {
		t.Fatalf("expired %d, line %d, active %d", total, m.line.Len(), m.active.Len())
	}
	if events, more := m.decideTick(later); len(events) != 0 || more {
		t.Fatalf("after the mass expiry: %v %v", events, more)
	}
}

// countingJournal records the largest append.
type countingJournal struct {
	*actortest.MemJournal
	largest chan int // the size of each append, buffered
}

func (c *countingJournal) AppendAsync(id string, events []persistence.Event, r persistence.ReminderChange, done func(error)) error {
	select {
	case c.largest <- len(events):
	default:
	}
	return c.MemJournal.AppendAsync(id, events, r, done)
}

// seedJournal writes events as the actor id's first rows.
func seedJournal(t testing.TB, j Journal, id string, events []proto.Message) {
	t.Helper()
	rows := make([]persistence.Event, len(events))
	for i, e := range events {
		typ, payload, err := encode(e)
		if err != nil {
			t.Fatal(err)
		}
		rows[i] = persistence.Event{Seq: int64(i + 1), Type: typ, Payload: payload}
	}
	done := make(chan error, 1)
	if err := j.AppendAsync(id, rows, persistence.ReminderChange{}, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestQueueMassExpiryActor checks the actor side: thousands of WAIT tokens
// falling due together expire in writes of at most a chunk, each after the
// previous one is durable, and the queue keeps answering meanwhile.
func TestQueueMassExpiryActor(t *testing.T) {
	const n = 3*queueChunk + 1
	ms := wqNow().UnixMilli()
	events := []proto.Message{}
	for id := int64(1); id <= n; id++ {
		events = append(events, &messages.TokenIssued{TokenId: id, UserId: id, Token: fmt.Sprintf("tok-%d", id), AtMs: ms})
	}
	events = append(events, &messages.TokenActivated{TokenId: 1, AtMs: ms})
	j := &countingJournal{MemJournal: actortest.NewMemJournal(), largest: make(chan int, 1000)}
	seedJournal(t, j, queueJournalPrefix+"main", events)
	<-j.largest // the seed

	clock := newWQClock()
	h := startQueue(t, j, clock, QueueConfig{ActiveTokens: 1, TokenIdleTTL: time.Hour, WaitIdleTTL: time.Minute,
		TickInterval: 2 * time.Millisecond})
	h.wake(t)
	if h.tokens.Waiting() != n-1 {
		t.Fatalf("waiting %d after recovery", h.tokens.Waiting())
	}
	clock.Advance(time.Minute)
	fresh := h.issue(t, n+1) // answered during the mass expiry
	if fresh.GetStatus() != tsWait {
		t.Fatalf("fresh token %v", fresh)
	}
	actortest.Eventually(t, 10*time.Second, func() bool { return h.tokens.Waiting() == 1 }, "the mass expiry to finish")
	if st, pos := h.status(t, fresh.GetToken()); st != tsWait || pos != 1 {
		t.Fatalf("fresh token after the mass expiry: %v at %d", st, pos)
	}
	if got := len(queueExpiries(t, j.MemJournal)); got != n-1 {
		t.Fatalf("%d expiries journaled, want %d", got, n-1)
	}
	close(j.largest)
	for size := range j.largest {
		if size > queueChunk+1 {
			t.Fatalf("one write held %d events, want at most a chunk", size)
		}
	}
}

// TestQueueSnapshotIsACopy checks that the model never changes a snapshot
// it returned (the journal encodes it on another goroutine).
func TestQueueSnapshotIsACopy(t *testing.T) {
	m := queueGiven(2, issued(1, 1), &messages.TokenActivated{TokenId: 1, AtMs: 1}, issued(2, 2), issued(3, 3),
		&messages.TokenExpired{TokenId: 2, AtMs: 2, Reason: ExpiredReasonPaid})
	snap := m.Snapshot()
	want := proto.Clone(snap)
	for _, e := range []proto.Message{
		&messages.TokensTouched{TokenIds: []int64{1, 3}, AtMs: 50},
		&messages.TokenActivated{TokenId: 3, AtMs: 60},
		&messages.TokenExpired{TokenId: 1, AtMs: 70, Reason: ExpiredReasonIdle},
		issued(4, 4),
	} {
		m.Apply(e)
	}
	m.prune(wqNow().Add(24 * time.Hour))
	if !proto.Equal(snap, want) {
		t.Fatalf("snapshot changed under the model:\n%v\nwant %v", snap, want)
	}
}

// TestQueueNextDue checks the reminder: the earliest idle deadline while a
// token is live, none otherwise.
func TestQueueNextDue(t *testing.T) {
	m := queueGiven(1) // TokenIdleTTL 1m, WaitIdleTTL 30s
	if _, open := m.NextDue(); open {
		t.Fatal("open work with no tokens")
	}
	ms := wqNow().UnixMilli()
	m.Apply(issued(1, 1))
	m.Apply(&messages.TokenActivated{TokenId: 1, AtMs: ms})
	m.Apply(&messages.TokenIssued{TokenId: 2, UserId: 2, Token: "tok2", AtMs: ms + 40_000})
	if due, open := m.NextDue(); !open || due.UnixMilli() != ms+60_000 {
		t.Fatalf("due %v %v, want the ACTIVE token's deadline", due, open)
	}
	m.Apply(&messages.TokensTouched{TokenIds: []int64{1}, AtMs: ms + 50_000})
	if due, _ := m.NextDue(); due.UnixMilli() != ms+70_000 {
		t.Fatalf("due %v, want the WAIT token's deadline once the other was used", due.UnixMilli()-ms)
	}
	m.Apply(&messages.TokenExpired{TokenId: 1, AtMs: ms})
	m.Apply(&messages.TokenExpired{TokenId: 2, AtMs: ms})
	if _, open := m.NextDue(); open {
		t.Fatal("open work once every token expired")
	}
}
