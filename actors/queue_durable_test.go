package actors

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/actors/actortest"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// gateJournal wraps MemJournal with the ambiguous cases a database has:
// while held, each append is written (or failed) as usual but its
// completion waits until the test releases it, possibly reporting a
// failure for a write that succeeded; refuse makes appends fail at once
// (the journal's queue is full).
type gateJournal struct {
	*actortest.MemJournal
	mu       sync.Mutex
	hold     bool
	refuse   bool
	held     []func(override error)
	appended chan struct{} // one signal per held append
	refused  atomic.Int64  // appends refused
}

func newGateJournal() *gateJournal {
	return &gateJournal{MemJournal: actortest.NewMemJournal(), appended: make(chan struct{}, 100)}
}

func (g *gateJournal) AppendAsync(id string, events []persistence.Event, r persistence.ReminderChange, done func(error)) error {
	g.mu.Lock()
	hold, refuse := g.hold, g.refuse
	g.mu.Unlock()
	if refuse {
		g.refused.Add(1)
		return fmt.Errorf("gate: %w", persistence.ErrOverloaded)
	}
	if !hold {
		return g.MemJournal.AppendAsync(id, events, r, done)
	}
	result := make(chan error, 1)
	if err := g.MemJournal.AppendAsync(id, events, r, func(err error) { result <- err }); err != nil {
		return err
	}
	g.mu.Lock()
	g.held = append(g.held, func(override error) {
		err := <-result
		if override != nil {
			err = override
		}
		done(err)
	})
	g.mu.Unlock()
	g.appended <- struct{}{}
	return nil
}

func (g *gateJournal) setHold(on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold = on
}

func (g *gateJournal) setRefuse(on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refuse = on
}

// release completes the held appends, reporting override instead of their
// real outcome when it is not nil.
func (g *gateJournal) release(override error) {
	g.mu.Lock()
	held := g.held
	g.held = nil
	g.mu.Unlock()
	for _, f := range held {
		go f(override)
	}
}

// waitAppended waits for a held append.
func (g *gateJournal) waitAppended(t *testing.T) {
	t.Helper()
	select {
	case <-g.appended:
	case <-time.After(5 * time.Second):
		t.Fatal("no append")
	}
}

// recovered polls a token until the queue manager answers: the
// incarnation that broke down answers STORE_UNAVAILABLE until its
// replacement takes over, and a client retries.
func (h *queueHarness) recovered(t *testing.T, token string) (messages.TokenStatus, int64) {
	t.Helper()
	var tok *messages.Token
	actortest.Eventually(t, 5*time.Second, func() bool {
		var err error
		tok, err = h.get(t, token)
		if err != nil && wqCode(err) != messages.CodeStoreUnavailable {
			t.Fatalf("get %s: %v", token, err)
		}
		return err == nil
	}, "the queue manager to be replaced")
	return tok.GetStatus(), tok.GetPosition()
}

// tableShows reports a token's status in the table (0 if absent) without
// counting it as a use.
func tableShows(tt *TokenTable, token string) (messages.TokenStatus, bool) {
	key := digestOf(token)
	s := tt.shard(key)
	s.mu.RLock()
	e := s.m[key]
	s.mu.RUnlock()
	if e == nil {
		return 0, false
	}
	return messages.TokenStatus(e.status.Load()), e.paid.Load()
}

// journalStatuses replays the queue's journal into token digest → status.
func journalStatuses(t *testing.T, j *actortest.MemJournal) map[string]messages.TokenStatus {
	t.Helper()
	byID := map[int64]string{}
	out := map[string]messages.TokenStatus{}
	for _, e := range j.Events(queueJournalPrefix + "main") {
		m, err := decode(e.Type, e.Payload)
		if err != nil {
			t.Error(err)
			return nil
		}
		switch ev := m.(type) {
		case *messages.TokenIssued:
			d := issuedDigest(ev.GetTokenDigest(), ev.GetToken())
			byID[ev.GetTokenId()] = d
			out[d] = tsWait
		case *messages.TokenRekeyed:
			// The old key stays, with the status it had: the table moves
			// an entry to its new key in two steps (new key in, then old
			// key out), so a reader of the whole table may see both.
			old, d := byID[ev.GetTokenId()], digestKey(ev.GetTokenDigest())
			byID[ev.GetTokenId()], out[d] = d, out[old]
		case *messages.TokenActivated:
			if out[byID[ev.GetTokenId()]] == tsWait {
				out[byID[ev.GetTokenId()]] = tsActive
			}
		case *messages.TokenExpired:
			out[byID[ev.GetTokenId()]] = tsGone
		}
	}
	return out
}

// TestQueueTablePublishesOnlyDurable drives one admission through the
// three outcomes of a write — failed, written but reported failed, written
// — and checks that the table never shows it before it is durable, forgets
// nothing a failed write did not undo, and never flips ACTIVE → WAIT.
func TestQueueTablePublishesOnlyDurable(t *testing.T) {
	g := newGateJournal()
	clock := newWQClock()
	cfg := QueueConfig{ActiveTokens: 1, TokenIdleTTL: time.Hour, WaitIdleTTL: time.Hour}
	h := startQueue(t, g, clock, cfg)
	a, b := h.issue(t, 1).GetToken(), h.issue(t, 2).GetToken()
	expireA := func() chan error {
		out := make(chan error, 1)
		go func() {
			_, err := wqRequest[*messages.TokenResult](t, h.local, "queue", "main", &messages.ExpireToken{Token: a, Reason: ExpiredReasonPaid})
			out <- err
		}()
		return out
	}
	shows := func(step string, wantA, wantB messages.TokenStatus) {
		t.Helper()
		if st, _ := tableShows(h.tokens, a); st != wantA {
			t.Fatalf("%s: table shows token a %v, want %v", step, st, wantA)
		}
		if st, _ := tableShows(h.tokens, b); st != wantB {
			t.Fatalf("%s: table shows token b %v, want %v", step, st, wantB)
		}
	}
	shows("start", tsActive, tsWait)

	// 1. The write fails: nothing of it is ever shown.
	g.setHold(true)
	g.FailNext(errors.New("connection reset"))
	res := expireA()
	g.waitAppended(t) // applied by the actor, not durable
	shows("write in flight", tsActive, tsWait)
	g.release(nil)
	if err := <-res; wqCode(err) != messages.CodeStoreUnavailable {
		t.Fatalf("expire on a failed write: %v", err)
	}
	shows("after the failed write", tsActive, tsWait)
	g.setHold(false)
	if st, pos := h.recovered(t, b); st != tsWait || pos != 1 {
		t.Fatalf("token b after recovery: %v at %d", st, pos)
	}
	shows("recovered", tsActive, tsWait)

	// 2. Written but reported failed: shown only once a new incarnation
	// recovers it from the journal.
	g.setHold(true)
	res = expireA()
	g.waitAppended(t)
	shows("ambiguous write in flight", tsActive, tsWait)
	g.release(fmt.Errorf("commit outcome unknown: %w", persistence.ErrUnavailable))
	if err := <-res; wqCode(err) != messages.CodeStoreUnavailable {
		t.Fatalf("expire on an ambiguous write: %v", err)
	}
	shows("after the ambiguous write", tsActive, tsWait)
	g.setHold(false)
	if st, _ := h.recovered(t, b); st != tsActive {
		t.Fatalf("token b after recovering the written admission: %v", st)
	}
	shows("recovered the written expiry", tsGone, tsActive)
	if _, paid := tableShows(h.tokens, a); !paid {
		t.Fatal("paid expiry not shown")
	}

	// 3. A write that succeeds is shown before its reply is sent.
	c := h.issue(t, 3).GetToken()
	g.setHold(true)
	out := make(chan error, 1)
	go func() {
		_, err := wqRequest[*messages.TokenResult](t, h.local, "queue", "main", &messages.ExpireToken{Token: b, Reason: ExpiredReasonPaid})
		out <- err
	}()
	g.waitAppended(t)
	if st, _ := tableShows(h.tokens, c); st != tsWait {
		t.Fatalf("admission shown before it is durable: %v", st)
	}
	g.release(nil)
	if err := <-out; err != nil {
		t.Fatal(err)
	}
	if st, _ := tableShows(h.tokens, c); st != tsActive {
		t.Fatalf("admission not shown when its reply came: %v", st)
	}
	g.setHold(false)
}

// TestQueueTableNeverAheadOfJournal runs issues, expiries and ticks while
// writes fail at random, and checks all along that every token the table
// shows is in the journal in that status or a later one (the table is read
// before the journal, which only grows).
func TestQueueTableNeverAheadOfJournal(t *testing.T) {
	g := newGateJournal()
	clock := newWQClock()
	h := startQueue(t, g, clock, QueueConfig{ActiveTokens: 3, TokenIdleTTL: 50 * time.Millisecond,
		WaitIdleTTL: 80 * time.Millisecond, SnapshotEvery: 10, TickInterval: 2 * time.Millisecond})
	rank := map[messages.TokenStatus]int{tsWait: 1, tsActive: 2, tsGone: 3}
	var stop atomic.Bool
	var checks atomic.Int64
	var watcher sync.WaitGroup
	watcher.Go(func() {
		for !stop.Load() {
			shown := map[string]messages.TokenStatus{}
			for i := range h.tokens.shards {
				s := &h.tokens.shards[i]
				s.mu.RLock()
				for tok, e := range s.m {
					shown[tok] = messages.TokenStatus(e.status.Load())
				}
				s.mu.RUnlock()
			}
			journal := journalStatuses(t, g.MemJournal)
			for tok, st := range shown {
				if js, ok := journal[tok]; !ok || rank[st] > rank[js] {
					t.Errorf("table shows %s %v; the journal has %v", tok, st, js)
					stop.Store(true)
					return
				}
			}
			checks.Add(1)
		}
	})
	rng := rand.New(rand.NewPCG(6, 4))
	var live []string
	for step := range 300 {
		if step%7 == 3 {
			g.FailNext(errors.New("injected"))
		}
		if step%5 == 0 {
			clock.Advance(20 * time.Millisecond)
		}
		if len(live) > 0 && rng.IntN(3) == 0 {
			tok := live[rng.IntN(len(live))]
			_, _ = wqRequest[*messages.TokenResult](t, h.local, "queue", "main", &messages.ExpireToken{Token: tok, Reason: ExpiredReasonPaid})
			continue
		}
		res, err := wqRequest[*messages.TokenResult](t, h.local, "queue", "main", &messages.IssueToken{UserId: int64(rng.IntN(40) + 1)})
		if err == nil {
			live = append(live, res.GetToken().GetToken())
		}
		if stop.Load() {
			break
		}
	}
	stop.Store(true)
	watcher.Wait()
	if checks.Load() == 0 {
		t.Fatal("the watcher never compared")
	}
}

// TestQueueRefusedWriteChangesNothing checks that a command whose events the
// journal cannot queue is answered STORE_UNAVAILABLE with nothing changed,
// while the actor keeps serving.
func TestQueueRefusedWriteChangesNothing(t *testing.T) {
	g := newGateJournal()
	h := startQueue(t, g, newWQClock(), QueueConfig{ActiveTokens: 1, TokenIdleTTL: time.Hour, WaitIdleTTL: time.Hour})
	a := h.issue(t, 1).GetToken()
	// The journal refuses: the first command's events are applied and wait
	// for a retry; commands after it are refused at once.
	g.setRefuse(true)
	first := make(chan error, 1)
	go func() {
		_, err := wqRequest[*messages.TokenResult](t, h.local, "queue", "main", &messages.IssueToken{UserId: 2})
		first <- err
	}()
	actortest.Eventually(t, 5*time.Second, func() bool { return g.refused.Load() > 0 }, "the journal to refuse a write")
	if _, refused := wqRequest[*messages.TokenResult](t, h.local, "queue", "main", &messages.IssueToken{UserId: 3}); wqCode(refused) != messages.CodeStoreUnavailable {
		t.Fatalf("refused issue: %v", refused)
	}
	if _, err := wqRequest[*messages.TokenResult](t, h.local, "queue", "main", &messages.ExpireToken{Token: a, Reason: ExpiredReasonPaid}); wqCode(err) != messages.CodeStoreUnavailable {
		t.Fatalf("refused expiry: %v", err)
	}
	g.setRefuse(false)
	if err := <-first; err != nil {
		t.Fatalf("the queued command after the journal came back: %v", err)
	}
	if st, _ := h.status(t, a); st != tsActive {
		t.Fatalf("a refused expiry changed token a: %v", st)
	}
	if h.tokens.Waiting() != 1 || h.tokens.Active() != 1 {
		t.Fatalf("table: waiting %d active %d", h.tokens.Waiting(), h.tokens.Active())
	}
	// Nothing of user 3's refused issue remains: asking again joins the line.
	if tok := h.issue(t, 3); tok.GetPosition() != 2 {
		t.Fatalf("user 3 after a refused issue: %v", tok)
	}
	for _, ev := range journaledEvents(t, g.MemJournal, queueJournalPrefix+"main") {
		if e, ok := ev.(*messages.TokenExpired); ok {
			t.Fatalf("a refused expiry reached the journal: %v", e)
		}
	}
}

// TestQueueReplayPublishesEndState checks that recovery shows nothing in
// the table while it replays, then the end state at once.
func TestQueueReplayPublishesEndState(t *testing.T) {
	m := newQueueModel(QueueConfig{ActiveTokens: 1}.withDefaults())
	table := NewTokenTable()
	for _, e := range []proto.Message{
		issued(1, 1), &messages.TokenActivated{TokenId: 1, AtMs: 1},
		issued(2, 2), &messages.TokenExpired{TokenId: 1, AtMs: 2, Reason: ExpiredReasonPaid},
		&messages.TokenActivated{TokenId: 2, AtMs: 2}, issued(3, 3),
	} {
		m.Apply(e) // as replay does: before publishAll
	}
	if len(m.takeChanges()) != 0 || table.Active()+table.Waiting() != 0 {
		t.Fatal("replay recorded changes")
	}
	m.publishAll(table)
	for tok, want := range map[string]messages.TokenStatus{"tok1": tsGone, "tok2": tsActive, "tok3": tsWait} {
		if st, _ := tableShows(table, tok); st != want {
			t.Fatalf("%s shows %v, want %v", tok, st, want)
		}
	}
	if table.Active() != 1 || table.Waiting() != 1 {
		t.Fatalf("counters: active %d waiting %d", table.Active(), table.Waiting())
	}
}
