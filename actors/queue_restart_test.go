package actors

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/concert/ticketing/actors/actortest"
	"github.com/concert/ticketing/messages"
	"google.golang.org/protobuf/proto"
)

// wake activates the queue manager without touching any token, as the
// node's reminder service does.
func (h *queueHarness) wake(t *testing.T) {
	t.Helper()
	if _, err := wqRequest[*messages.Wake](t, h.local, "queue", "main", &messages.Wake{}); err != nil {
		t.Fatalf("wake: %v", err)
	}
}

// queueExpiries returns the journal's TokenExpired events by token id.
func queueExpiries(t *testing.T, j *actortest.MemJournal) map[int64]*messages.TokenExpired {
	t.Helper()
	out := map[int64]*messages.TokenExpired{}
	for _, ev := range journaledEvents(t, j, queueJournalPrefix+"main") {
		if e, ok := ev.(*messages.TokenExpired); ok {
			out[e.GetTokenId()] = e
		}
	}
	return out
}

// TestQueueExpiresAtSurvivesRestart is the issue's case: TOKEN_IDLE_TTL=30s,
// tokens issued at t, the server restarted at t+20s. Before, every restart
// re-armed every idle clock (expiry at restart+30s). Now the expiry shown
// holds and tokens expire at their original time: a token used at t+5s at
// t+35s, a WAIT token never polled at t+30s.
func TestQueueExpiresAtSurvivesRestart(t *testing.T) {
	j := actortest.NewMemJournal()
	clock := newWQClock()
	t0 := clock.Now()
	cfg := QueueConfig{ActiveTokens: 2, TokenIdleTTL: 30 * time.Second, WaitIdleTTL: 30 * time.Second,
		TickInterval: 2 * time.Millisecond}
	h := startQueue(t, j, clock, cfg)
	u1, u2, u3 := h.issue(t, 1), h.issue(t, 2), h.issue(t, 3)
	if u1.GetStatus() != tsActive || u2.GetStatus() != tsActive || u3.GetStatus() != tsWait {
		t.Fatalf("statuses %v %v %v", u1.GetStatus(), u2.GetStatus(), u3.GetStatus())
	}
	if u1.GetExpiresAtMs() != t0.Add(30*time.Second).UnixMilli() {
		t.Fatalf("u1 expires at %d, want t+30s", u1.GetExpiresAtMs())
	}

	// Both ACTIVE tokens are used at t+5s (a hold checks u1's token in the
	// table, u2 polls); the queue manager journals the uses in one batch.
	h.advance(t, 5*time.Second)
	used := clock.Now()
	if _, ok := h.tokens.Check(u1.GetToken(), used); !ok {
		t.Fatal("u1 not in the table")
	}
	h.get(t, u2.GetToken())
	actortest.Eventually(t, 5*time.Second, func() bool {
		ids := map[int64]bool{}
		for _, ev := range journaledEvents(t, j, queueJournalPrefix+"main") {
			if e, ok := ev.(*messages.TokensTouched); ok {
				for _, id := range e.GetTokenIds() {
					ids[id] = true
				}
			}
		}
		return ids[u1.GetId()] && ids[u2.GetId()]
	}, "the uses to be journaled")
	shown, err := h.get(t, u2.GetToken())
	if err != nil || shown.GetExpiresAtMs() != used.Add(30*time.Second).UnixMilli() {
		t.Fatalf("u2 after its use: %v %v, want expiry t+35s", shown, err)
	}

	// Killed and restarted at t+20s.
	h.advance(t, 15*time.Second)
	h.stop()
	h2 := startQueue(t, j, clock, cfg)
	h2.wake(t)
	again, err := h2.get(t, u2.GetToken())
	if err != nil || again.GetExpiresAtMs() != shown.GetExpiresAtMs() {
		t.Fatalf("u2 after the restart: %v %v, want expiry %d as shown before", again, err, shown.GetExpiresAtMs())
	}

	// Nobody touches u1 or u3 again (neither the table nor the actor is
	// asked about them): the journal tells when they expire.
	h2.advance(t, 9*time.Second) // t+29s
	if e := queueExpiries(t, j); len(e) != 0 {
		t.Fatalf("expiries before t+30s: %v", e)
	}
	h2.advance(t, time.Second) // t+30s
	actortest.Eventually(t, 5*time.Second, func() bool { return queueExpiries(t, j)[u3.GetId()] != nil }, "u3 to leave the line")
	if e := queueExpiries(t, j)[u3.GetId()]; e.GetAtMs() != t0.Add(30*time.Second).UnixMilli() || e.GetReason() != ExpiredReasonAbandoned {
		t.Fatalf("u3: %v, want abandoned at t+30s", e)
	}
	h2.advance(t, 4*time.Second) // t+34s
	if e := queueExpiries(t, j)[u1.GetId()]; e != nil {
		t.Fatalf("u1 expired before t+35s: %v", e)
	}
	h2.advance(t, time.Second) // t+35s
	actortest.Eventually(t, 5*time.Second, func() bool { return queueExpiries(t, j)[u1.GetId()] != nil }, "u1 to expire")
	if e := queueExpiries(t, j)[u1.GetId()]; e.GetAtMs() != used.Add(30*time.Second).UnixMilli() || e.GetReason() != ExpiredReasonIdle {
		t.Fatalf("u1: %v, want idle at t+35s", e)
	}
	actortest.Eventually(t, 5*time.Second, func() bool {
		st, _ := tableShows(h2.tokens, u1.GetToken())
		return st == tsGone
	}, "the table to show u1 expired")
}

// TestQueueTouchesJournaledInBatches checks that many checks of the same
// tokens cost one TokensTouched event per collection, holding every token
// used, at the time of the latest use, and nothing when nobody used a token.
func TestQueueTouchesJournaledInBatches(t *testing.T) {
	j := actortest.NewMemJournal()
	clock := newWQClock()
	h := startQueue(t, j, clock, QueueConfig{ActiveTokens: 5, TokenIdleTTL: time.Hour, WaitIdleTTL: time.Hour,
		TickInterval: 2 * time.Millisecond})
	var toks []*messages.Token
	for u := int64(1); u <= 6; u++ {
		toks = append(toks, h.issue(t, u))
	}
	clock.Advance(time.Second)
	for range 1000 {
		for _, tok := range toks[:5] {
			h.tokens.Check(tok.GetToken(), clock.Now())
		}
	}
	h.tokens.Check(toks[5].GetToken(), clock.Now()) // WAIT: a check is not a poll
	h.advance(t, 0)
	h.advance(t, time.Second) // nothing used during this second
	touched := func() []*messages.TokensTouched {
		var batches []*messages.TokensTouched
		for _, ev := range journaledEvents(t, j, queueJournalPrefix+"main") {
			if e, ok := ev.(*messages.TokensTouched); ok {
				batches = append(batches, e)
			}
		}
		return batches
	}
	// A tick queues the batch; the journal writes it on its own goroutine,
	// which ticks do not wait for.
	actortest.Eventually(t, 5*time.Second, func() bool { return len(touched()) > 0 }, "the uses to be journaled")
	// Ticks run on a real 2ms timer, so one may fall inside the loop above
	// and split its uses over two collections; which split is luck. What
	// is not: 5,000 checks at one instant journal each of tokens 1-5 once,
	// at that instant, and the WAIT token never.
	actortest.Eventually(t, 5*time.Second, func() bool {
		n := 0
		for _, b := range touched() {
			n += len(b.GetTokenIds())
		}
		return n >= 5
	}, "all five uses to be journaled")
	h.advance(t, 0) // a later collection must add nothing
	batches := touched()
	seen := map[int64]int{}
	for _, b := range batches {
		if b.GetAtMs() != toks[0].GetCreatedAtMs()+1000 {
			t.Fatalf("batches %v, want every use at t+1s", batches)
		}
		for _, id := range b.GetTokenIds() {
			seen[id]++
		}
	}
	if len(seen) != 5 || len(batches) > 5 {
		t.Fatalf("batches %v, want tokens 1-5 only", batches)
	}
	for id, n := range seen {
		if n != 1 || id < 1 || id > 5 {
			t.Fatalf("batches %v, want each of tokens 1-5 exactly once", batches)
		}
	}
}

// TestQueueCollectionIsOneEvent checks, without the actor's real-time ticks,
// that one collection of many checks of the same tokens is one
// TokensTouched naming each used ACTIVE token once, at the latest use, and
// that the next collection with no new use is nothing.
func TestQueueCollectionIsOneEvent(t *testing.T) {
	var given []proto.Message
	for id := int64(1); id <= 6; id++ {
		given = append(given, issued(id, id))
	}
	for id := int64(1); id <= 5; id++ {
		given = append(given, &messages.TokenActivated{TokenId: id, AtMs: wqNow().UnixMilli()})
	}
	m, table := queueGivenTable(5, given...) // tokens 1-5 ACTIVE, 6 WAIT
	later := wqNow().Add(time.Second)
	for range 1000 {
		for id := 1; id <= 6; id++ {
			table.Check(fmt.Sprintf("tok%d", id), later)
		}
	}
	events := m.touchEvents(table)
	if len(events) != 1 {
		t.Fatalf("events %v, want one TokensTouched", events)
	}
	e := events[0].(*messages.TokensTouched)
	ids := slices.Sorted(slices.Values(e.GetTokenIds()))
	if fmt.Sprint(ids) != "[1 2 3 4 5]" || e.GetAtMs() != later.UnixMilli() {
		t.Fatalf("event %v, want tokens 1-5 at +1s", e)
	}
	m.Apply(e)
	m.touchesRecorded()
	if again := m.touchEvents(table); len(again) != 0 {
		t.Fatalf("a collection with no new use: %v", again)
	}
}

// TestQueueReplacedInProcessKeepsUses checks that a new incarnation on the
// same table (the queue manager replaced after a failure) inherits uses the
// old one had not journaled yet, rather than losing them.
func TestQueueReplacedInProcessKeepsUses(t *testing.T) {
	m, table := queueGivenTable(1, issued(1, 1), &messages.TokenActivated{TokenId: 1, AtMs: wqNow().UnixMilli()})
	later := wqNow().Add(10 * time.Second)
	table.Check("tok1", later) // reported to the old incarnation, never collected
	next := queueGiven(1)
	if err := next.Restore(m.Snapshot()); err != nil {
		t.Fatal(err)
	}
	next.publishAll(table)
	events := next.touchEvents(table)
	if len(events) != 1 || fmt.Sprint(events[0].(*messages.TokensTouched).GetTokenIds()) != "[1]" ||
		events[0].(*messages.TokensTouched).GetAtMs() != later.UnixMilli() {
		t.Fatalf("events %v, want token 1 used at +10s", events)
	}
}

// TestQueueLowerIdleTTLAcrossRestart is the fresh tester's case: the idle
// TTLs lowered from 1h to 1min across a restart, once a snapshot holds the
// tokens. Tokens recovered from the snapshot keep the deadline they were
// shown (their last use + the TTL then in force), while tokens admitted or
// issued after the restart expire at their own, shorter deadline. Before,
// the idle-order lists put the new tokens behind the recovered ones (whose
// derived last use lies in the future under the lower TTL), so nothing
// expired until the recovered tokens' deadlines an hour later.
func TestQueueLowerIdleTTLAcrossRestart(t *testing.T) {
	j := actortest.NewMemJournal()
	clock := newWQClock()
	t0 := clock.Now()
	h := startQueue(t, j, clock, QueueConfig{ActiveTokens: 1, TokenIdleTTL: time.Hour, WaitIdleTTL: time.Hour,
		SnapshotEvery: 4, TickInterval: 2 * time.Millisecond})
	u1, u2, u3 := h.issue(t, 1), h.issue(t, 2), h.issue(t, 3) // ACTIVE, WAIT, WAIT: 4 events
	actortest.Eventually(t, 5*time.Second, func() bool { return wqSnapshotSeq(j, queueJournalPrefix+"main") >= 4 }, "a snapshot of all three")
	h.stop()

	clock.Advance(time.Second)
	h2 := startQueue(t, j, clock, QueueConfig{ActiveTokens: 2, TokenIdleTTL: time.Minute, WaitIdleTTL: time.Minute,
		TickInterval: 2 * time.Millisecond})
	h2.wake(t)
	u4 := h2.issue(t, 4) // a new WAIT token, behind u3
	if st, _ := h2.status(t, u2.GetToken()); st != tsActive {
		t.Fatalf("u2 is %v after the restart, want admitted into the new slot", st)
	}
	if tok, _ := h2.get(t, u1.GetToken()); tok.GetExpiresAtMs() != t0.Add(time.Hour).UnixMilli() {
		t.Fatalf("u1 expires at %d, want t+1h as shown before the restart", tok.GetExpiresAtMs())
	}
	if tok, _ := h2.get(t, u2.GetToken()); tok.GetExpiresAtMs() != t0.Add(61*time.Second).UnixMilli() {
		t.Fatalf("u2 expires at %d, want its admission + 1min", tok.GetExpiresAtMs())
	}
	if u4.GetStatus() != tsWait || u4.GetExpiresAtMs() != t0.Add(61*time.Second).UnixMilli() {
		t.Fatalf("u4: %v, want WAIT expiring at its issue + 1min", u4)
	}

	h2.advance(t, 59*time.Second) // t+60s
	if e := queueExpiries(t, j); len(e) != 0 {
		t.Fatalf("expiries before t+61s: %v", e)
	}
	h2.advance(t, time.Second) // t+61s
	actortest.Eventually(t, 5*time.Second, func() bool {
		e := queueExpiries(t, j)
		return e[u2.GetId()] != nil && e[u4.GetId()] != nil
	}, "u2 and u4 to expire at their own deadline")
	e := queueExpiries(t, j)
	if e[u2.GetId()].GetAtMs() != t0.Add(61*time.Second).UnixMilli() || e[u2.GetId()].GetReason() != ExpiredReasonIdle {
		t.Fatalf("u2: %v, want idle at t+61s", e[u2.GetId()])
	}
	if e[u4.GetId()].GetAtMs() != t0.Add(61*time.Second).UnixMilli() || e[u4.GetId()].GetReason() != ExpiredReasonAbandoned {
		t.Fatalf("u4: %v, want abandoned at t+61s", e[u4.GetId()])
	}
	if e[u1.GetId()] != nil || e[u3.GetId()] != nil {
		t.Fatalf("recovered tokens expired before their deadline: %v %v", e[u1.GetId()], e[u3.GetId()])
	}

	h2.advance(t, time.Hour-61*time.Second) // t+1h
	actortest.Eventually(t, 5*time.Second, func() bool { return queueExpiries(t, j)[u1.GetId()] != nil }, "u1 to expire")
	if e := queueExpiries(t, j)[u1.GetId()]; e.GetAtMs() != t0.Add(time.Hour).UnixMilli() {
		t.Fatalf("u1: %v, want idle at t+1h", e)
	}
}
