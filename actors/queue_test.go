package actors

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/actors/actortest"
	"github.com/concert/ticketing/cluster"
	"github.com/concert/ticketing/messages"
)

// ---- the line ----

// TestWaitLinePositions checks the Fenwick positions against a plain slice
// through pushes, removals from anywhere and compactions.
func TestWaitLinePositions(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var l waitLine
	var naive []*qtoken
	id := int64(0)
	for step := range 5000 {
		if len(naive) == 0 || rng.IntN(10) < 6 {
			id++
			tok := &qtoken{id: id}
			l.push(tok)
			naive = append(naive, tok)
		} else {
			k := rng.IntN(len(naive))
			if rng.IntN(2) == 0 {
				k = 0 // admissions take the head
			}
			l.remove(naive[k])
			naive = append(naive[:k], naive[k+1:]...)
		}
		if l.Len() != len(naive) {
			t.Fatalf("step %d: len %d, want %d", step, l.Len(), len(naive))
		}
		if step%50 == 0 || len(naive) < 5 {
			for i, tok := range naive {
				if p := l.position(tok); p != int64(i+1) {
					t.Fatalf("step %d: token %d at %d, want %d", step, tok.id, p, i+1)
				}
			}
			var order []*qtoken
			l.each(func(q *qtoken) bool { order = append(order, q); return true })
			if len(order) != len(naive) || (len(order) > 0 && order[0] != naive[0]) {
				t.Fatalf("step %d: each gives %d tokens", step, len(order))
			}
		}
	}
	if l.position(&qtoken{lineNo: 3}) != 0 {
		t.Fatal("a token not in line has a position")
	}
}

// ---- pure decisions ----

func queueGiven(active int, events ...proto.Message) *queueModel {
	m, _ := queueGivenTable(active, events...)
	return m
}

// queueGivenTable builds a model from events, as if they were durable: the
// returned table shows them.
func queueGivenTable(active int, events ...proto.Message) (*queueModel, *TokenTable) {
	m := newQueueModel(QueueConfig{
		ActiveTokens: active, TokenIdleTTL: time.Minute, WaitIdleTTL: 30 * time.Second, ExpiredRetention: time.Hour,
	}.withDefaults())
	table := NewTokenTable()
	m.publishAll(table)
	for _, e := range events {
		m.Apply(e)
	}
	table.apply(m.takeChanges())
	return m, table
}

func issued(id, user int64) *messages.TokenIssued {
	return &messages.TokenIssued{TokenId: id, UserId: user, Token: fmt.Sprintf("tok%d", id), AtMs: wqNow().UnixMilli()}
}

func TestQueueDecisions(t *testing.T) {
	now := wqNow()
	ms := now.UnixMilli()
	random := func() *bytes.Reader { return bytes.NewReader(bytes.Repeat([]byte{0xAB}, 64)) }
	newTok := "q6urq6urq6urq6urq6urqw"          // base64url of 16 × 0xAB
	newDigest := storedDigest(digestOf(newTok)) // only the digest is journaled
	tests := []struct {
		name    string
		active  int
		given   []proto.Message
		decide  func(m *queueModel) ([]proto.Message, *messages.Rejection)
		want    []proto.Message
		wantRej string
	}{
		{"issue activates when a slot is free", 2, nil,
			func(m *queueModel) ([]proto.Message, *messages.Rejection) {
				ev, _, rej := m.decideIssue(&messages.IssueToken{UserId: 5}, now, random())
				return ev, rej
			},
			[]proto.Message{
				&messages.TokenIssued{TokenId: 1, UserId: 5, TokenDigest: newDigest, AtMs: ms},
				&messages.TokenActivated{TokenId: 1, AtMs: ms},
			}, ""},
		{"issue waits when full", 1, []proto.Message{issued(1, 1), &messages.TokenActivated{TokenId: 1}},
			func(m *queueModel) ([]proto.Message, *messages.Rejection) {
				ev, _, rej := m.decideIssue(&messages.IssueToken{UserId: 5}, now, random())
				return ev, rej
			},
			[]proto.Message{&messages.TokenIssued{TokenId: 2, UserId: 5, TokenDigest: newDigest, AtMs: ms}}, ""},
		{"issue admits an earlier waiter first", 2, []proto.Message{issued(1, 1), issued(2, 2), &messages.TokenActivated{TokenId: 1}},
			func(m *queueModel) ([]proto.Message, *messages.Rejection) {
				ev, _, rej := m.decideIssue(&messages.IssueToken{UserId: 5}, now, random())
				return ev, rej
			},
			[]proto.Message{
				&messages.TokenIssued{TokenId: 3, UserId: 5, TokenDigest: newDigest, AtMs: ms},
				&messages.TokenActivated{TokenId: 2, AtMs: ms},
			}, ""},
		{"live token returned again with a fresh secret", 1, []proto.Message{issued(1, 5)},
			func(m *queueModel) ([]proto.Message, *messages.Rejection) {
				ev, secret, rej := m.decideIssue(&messages.IssueToken{UserId: 5}, now, random())
				if secret != newTok {
					t.Errorf("returned secret %q, want %q", secret, newTok)
				}
				return ev, rej
			}, []proto.Message{&messages.TokenRekeyed{TokenId: 1, TokenDigest: newDigest, AtMs: ms}}, ""},
		{"expired token replaced", 1, []proto.Message{issued(1, 5), &messages.TokenActivated{TokenId: 1}, &messages.TokenExpired{TokenId: 1, Reason: "paid"}},
			func(m *queueModel) ([]proto.Message, *messages.Rejection) {
				ev, _, rej := m.decideIssue(&messages.IssueToken{UserId: 5}, now, random())
				return ev, rej
			},
			[]proto.Message{
				&messages.TokenIssued{TokenId: 2, UserId: 5, TokenDigest: newDigest, AtMs: ms},
				&messages.TokenActivated{TokenId: 2, AtMs: ms},
			}, ""},
		{"bad user", 1, nil,
			func(m *queueModel) ([]proto.Message, *messages.Rejection) {
				ev, _, rej := m.decideIssue(&messages.IssueToken{UserId: 0}, now, random())
				return ev, rej
			}, nil, messages.CodeInvalidRequest},
		{"broken random source", 1, nil,
			func(m *queueModel) ([]proto.Message, *messages.Rejection) {
				ev, _, rej := m.decideIssue(&messages.IssueToken{UserId: 1}, now, bytes.NewReader(nil))
				return ev, rej
			}, nil, messages.CodeStoreUnavailable},
		{"expiring an ACTIVE token admits the head", 1, []proto.Message{issued(1, 1), &messages.TokenActivated{TokenId: 1}, issued(2, 2), issued(3, 3)},
			func(m *queueModel) ([]proto.Message, *messages.Rejection) {
				return m.decideExpire(m.byID[1], "paid", now), nil
			},
			[]proto.Message{
				&messages.TokenExpired{TokenId: 1, AtMs: ms, Reason: "paid"},
				&messages.TokenActivated{TokenId: 2, AtMs: ms},
			}, ""},
		{"expiring a WAIT token admits nobody", 1, []proto.Message{issued(1, 1), &messages.TokenActivated{TokenId: 1}, issued(2, 2), issued(3, 3)},
			func(m *queueModel) ([]proto.Message, *messages.Rejection) {
				return m.decideExpire(m.byID[2], "gone", now), nil
			},
			[]proto.Message{&messages.TokenExpired{TokenId: 2, AtMs: ms, Reason: "gone"}}, ""},
		{"expiring twice", 1, []proto.Message{issued(1, 1), &messages.TokenExpired{TokenId: 1}},
			func(m *queueModel) ([]proto.Message, *messages.Rejection) {
				return m.decideExpire(m.byID[1], "paid", now), nil
			}, nil, ""},
		{"tick expires the idle and the abandoned, then admits", 2, []proto.Message{
			issued(1, 1), &messages.TokenActivated{TokenId: 1},
			issued(2, 2), &messages.TokenActivated{TokenId: 2},
			issued(3, 3), issued(4, 4), issued(5, 5),
		},
			func(m *queueModel) ([]proto.Message, *messages.Rejection) {
				later := now.Add(45 * time.Second)
				m.byID[1].entry.last.Store(later.Add(-59 * time.Second).UnixNano()) // used recently enough
				m.byID[2].entry.last.Store(later.Add(-time.Minute).UnixNano())      // idle
				m.byID[4].entry.last.Store(later.UnixNano())                        // polled
				ev, more := m.decideTick(later)
				if more {
					t.Error("more work reported for a few tokens")
				}
				return ev, nil
			},
			[]proto.Message{
				&messages.TokenExpired{TokenId: 2, AtMs: ms + 45_000, Reason: ExpiredReasonIdle},
				&messages.TokenExpired{TokenId: 3, AtMs: ms + 45_000, Reason: ExpiredReasonAbandoned},
				&messages.TokenExpired{TokenId: 5, AtMs: ms + 45_000, Reason: ExpiredReasonAbandoned},
				&messages.TokenActivated{TokenId: 4, AtMs: ms + 45_000},
			}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := queueGiven(tt.active, tt.given...)
			got, rej := tt.decide(m)
			checkDecision(t, got, rej, tt.want, tt.wantRej)
		})
	}
}

func TestQueueApplyAndSnapshot(t *testing.T) {
	m, table := queueGivenTable(2,
		issued(1, 1), &messages.TokenActivated{TokenId: 1, AtMs: 5},
		issued(2, 2), &messages.TokenActivated{TokenId: 2, AtMs: 6},
		issued(3, 3), issued(4, 4), issued(5, 5), issued(6, 6),
		&messages.TokenExpired{TokenId: 4, AtMs: 7, Reason: ExpiredReasonAbandoned},
		&messages.TokenExpired{TokenId: 1, AtMs: 8, Reason: ExpiredReasonPaid},
		&messages.TokenActivated{TokenId: 3, AtMs: 8},
	)
	if table.Active() != 2 || table.Waiting() != 2 || m.line.Len() != 2 {
		t.Fatalf("active %d waiting %d line %d", table.Active(), table.Waiting(), m.line.Len())
	}
	if v := m.view(m.byID[6]); v.GetPosition() != 2 || v.GetStatus() != messages.TokenStatus_TOKEN_WAIT {
		t.Fatalf("token 6: %v", v)
	}
	if c, _ := table.Check("tok1", wqNow()); !c.PaidExpired || c.Status != messages.TokenStatus_TOKEN_EXPIRED {
		t.Fatalf("token 1: %+v", c)
	}
	if m.byUser[1] != nil || m.byUser[4] != nil || m.byUser[3] == nil {
		t.Fatal("live tokens by user are wrong")
	}

	snap := m.Snapshot().(*messages.QueueSnapshot)
	var order []int64
	for _, tok := range snap.GetTokens() {
		order = append(order, tok.GetId())
	}
	if fmt.Sprint(order) != "[2 3 5 6 1 4]" || snap.GetNextTokenId() != 6 {
		t.Fatalf("snapshot order %v next %d", order, snap.GetNextTokenId())
	}

	r := queueGiven(2)
	if err := r.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(r.Snapshot(), snap) {
		t.Fatalf("restored %v\nwant %v", r.Snapshot(), snap)
	}
	rt := NewTokenTable()
	r.publishAll(rt)
	if c, _ := rt.Check("tok1", wqNow()); !c.PaidExpired {
		t.Fatal("paid expiry lost in the snapshot")
	}
	if r.view(r.byID[6]).GetPosition() != 2 || rt.Active() != 2 || rt.Waiting() != 2 {
		t.Fatal("restored line or counters are wrong")
	}

	// Retention: the oldest expired tokens are forgotten, in the table too.
	r.prune(time.UnixMilli(7).Add(time.Hour))
	if r.byID[4] != nil || r.byID[1] == nil {
		t.Fatal("prune forgot the wrong tokens")
	}
	rt.apply(r.takeChanges())
	if _, ok := rt.Check("tok4", wqNow()); ok {
		t.Fatal("pruned token still in the table")
	}
}

// ---- the actor ----

type queueHarness struct {
	journal Journal
	tracked *wqTracked
	local   *cluster.Local
	clock   *wqClock
	tokens  *TokenTable
	cfg     QueueConfig
	once    sync.Once
}

// startQueue runs a queue manager on a settable clock: TTLs are counted on
// that clock, while its tick runs in real time (every 10ms for these TTLs).
func startQueue(t *testing.T, journal Journal, clock *wqClock, cfg QueueConfig) *queueHarness {
	t.Helper()
	h := &queueHarness{journal: journal, clock: clock, tokens: NewTokenTable()}
	cfg.Journal, cfg.Tokens, cfg.Now, cfg.Logger = journal, h.tokens, clock.Now, wqLogger()
	if cfg.TokenIdleTTL == 0 {
		cfg.TokenIdleTTL = 40 * time.Millisecond
	}
	if cfg.WaitIdleTTL == 0 {
		cfg.WaitIdleTTL = 40 * time.Millisecond
	}
	h.cfg = cfg
	h.tracked = &wqTracked{produce: NewQueueProducer(cfg)}
	h.local = cluster.NewLocal(actor.NewActorSystem(), map[string]cluster.Producer{"queue": h.tracked.producer()})
	t.Cleanup(h.stop)
	return h
}

func (h *queueHarness) stop() { h.once.Do(h.local.Stop) }

func (h *queueHarness) issue(t *testing.T, user int64) *messages.Token {
	t.Helper()
	res, err := wqRequest[*messages.TokenResult](t, h.local, "queue", "main", &messages.IssueToken{UserId: user})
	if err != nil {
		t.Fatalf("issue for %d: %v", user, err)
	}
	return res.GetToken()
}

func (h *queueHarness) get(t *testing.T, token string) (*messages.Token, error) {
	t.Helper()
	res, err := wqRequest[*messages.TokenResult](t, h.local, "queue", "main", &messages.GetToken{Token: token})
	return res.GetToken(), err
}

func (h *queueHarness) status(t *testing.T, token string) (messages.TokenStatus, int64) {
	t.Helper()
	tok, err := h.get(t, token)
	if err != nil {
		t.Fatalf("get %s: %v", token, err)
	}
	return tok.GetStatus(), tok.GetPosition()
}

// advance moves the clock and waits for a tick to have seen it.
func (h *queueHarness) advance(t *testing.T, d time.Duration) {
	t.Helper()
	h.clock.Advance(d)
	q := h.tracked.last().(*queueActor)
	n := q.ticks.Load()
	actortest.Eventually(t, 5*time.Second, func() bool { return q.ticks.Load() >= n+2 }, "a tick")
}

const (
	tsWait   = messages.TokenStatus_TOKEN_WAIT
	tsActive = messages.TokenStatus_TOKEN_ACTIVE
	tsGone   = messages.TokenStatus_TOKEN_EXPIRED
)

func TestQueueTokenLifecycle(t *testing.T) {
	clock := newWQClock()
	h := startQueue(t, actortest.NewMemJournal(), clock, QueueConfig{ActiveTokens: 2, TokenIdleTTL: 100 * time.Millisecond, WaitIdleTTL: 100 * time.Millisecond})
	tok := map[int64]*messages.Token{}
	for u := int64(1); u <= 5; u++ {
		tok[u] = h.issue(t, u)
	}
	want := map[int64][2]int64{1: {int64(tsActive), 0}, 2: {int64(tsActive), 0}, 3: {int64(tsWait), 1}, 4: {int64(tsWait), 2}, 5: {int64(tsWait), 3}}
	for u, w := range want {
		if st, pos := h.status(t, tok[u].GetToken()); int64(st) != w[0] || pos != w[1] {
			t.Fatalf("user %d: %v at %d, want %v", u, st, pos, w)
		}
	}
	if len(tok[1].GetToken()) < 22 || tok[1].GetToken() == tok[2].GetToken() {
		t.Fatalf("tokens %q %q are not 128-bit random strings", tok[1].GetToken(), tok[2].GetToken())
	}
	if h.tokens.Active() != 2 || h.tokens.Waiting() != 3 {
		t.Fatalf("table: active %d waiting %d", h.tokens.Active(), h.tokens.Waiting())
	}
	// Asking again: the same token and place, with a fresh secret; the old
	// secret no longer works (only digests are kept: a secret is handed out
	// once).
	again := h.issue(t, 4)
	if again.GetId() != tok[4].GetId() || again.GetToken() == tok[4].GetToken() || again.GetPosition() != 2 {
		t.Fatalf("second issue for user 4: %v, first %v", again, tok[4])
	}
	if _, ok := h.tokens.Check(tok[4].GetToken(), clock.Now()); ok {
		t.Fatal("the replaced secret still passes the token table")
	}
	if _, err := h.get(t, tok[4].GetToken()); err == nil {
		t.Fatal("the replaced secret is still known to the queue manager")
	}
	if st, pos := h.status(t, again.GetToken()); st != tsWait || pos != 2 {
		t.Fatalf("the new secret: %v at %d", st, pos)
	}
	if len(again.GetTokenDigest()) != 0 {
		t.Fatal("the answer carries the stored digest")
	}
	tok[4] = again
	created := clock.Now().UnixMilli()
	if w := tok[4]; w.GetCreatedAtMs() != created || w.GetExpiresAtMs() != created+100 || w.GetUserId() != 4 || w.GetId() == 0 {
		t.Fatalf("token fields: %v", w)
	}

	// A payment expires the token at once and admits the head of the line.
	res, err := wqRequest[*messages.TokenResult](t, h.local, "queue", "main", &messages.ExpireToken{Token: tok[1].GetToken(), Reason: ExpiredReasonPaid})
	if err != nil || res.GetToken().GetStatus() != tsGone {
		t.Fatalf("expire: %v %v", res, err)
	}
	if c, ok := h.tokens.Check(tok[1].GetToken(), clock.Now()); !ok || !c.PaidExpired || c.Status != tsGone {
		t.Fatalf("paid token in the table: %+v", c)
	}
	if st, _ := h.status(t, tok[3].GetToken()); st != tsActive {
		t.Fatalf("head of the line not admitted: %v", st)
	}
	if c, _ := h.tokens.Check(tok[3].GetToken(), clock.Now()); c.Status != tsActive || c.UserID != 3 {
		t.Fatalf("table of token 3: %+v", c)
	}
	if _, pos := h.status(t, tok[4].GetToken()); pos != 1 {
		t.Fatalf("user 4 at %d after the head left, want 1", pos)
	}
	if fresh := h.issue(t, 1); fresh.GetToken() == tok[1].GetToken() || fresh.GetPosition() != 3 {
		t.Fatalf("user 1 after paying: %v", fresh)
	}

	// User 5 stops polling and leaves the line; user 1 (behind) moves up.
	// Users 2 and 3 keep using their tokens; 4 keeps polling.
	tok[1], _ = h.get(t, h.issue(t, 1).GetToken())
	for range 3 {
		h.advance(t, 40*time.Millisecond)
		h.tokens.Check(tok[2].GetToken(), clock.Now())
		h.tokens.Check(tok[3].GetToken(), clock.Now())
		h.status(t, tok[4].GetToken())
		h.status(t, tok[1].GetToken())
	}
	if st, _ := h.status(t, tok[5].GetToken()); st != tsGone {
		t.Fatalf("abandoned token is %v", st)
	}
	if _, pos := h.status(t, tok[1].GetToken()); pos != 2 {
		t.Fatalf("user 1 at %d after user 5 left, want 2", pos)
	}
	if again := h.issue(t, 5); again.GetToken() == tok[5].GetToken() {
		t.Fatal("an abandoned token came back")
	}

	// User 2 stops using its token: it expires and user 4 gets its slot.
	for range 3 {
		h.advance(t, 40*time.Millisecond)
		h.tokens.Check(tok[3].GetToken(), clock.Now())
		h.status(t, tok[4].GetToken())
		h.status(t, tok[1].GetToken())
	}
	if c, _ := h.tokens.Check(tok[2].GetToken(), clock.Now()); c.Status != tsGone || c.PaidExpired {
		t.Fatalf("idle token: %+v", c)
	}
	if st, _ := h.status(t, tok[4].GetToken()); st != tsActive {
		t.Fatalf("user 4 is %v after a slot freed", st)
	}
	if st, pos := h.status(t, tok[1].GetToken()); st != tsWait || pos != 1 {
		t.Fatalf("user 1: %v at %d", st, pos)
	}

	// Expired tokens are reported for the retention, then forgotten.
	h.advance(t, time.Hour)
	actortest.Eventually(t, 5*time.Second, func() bool {
		_, ok := h.tokens.Check(tok[2].GetToken(), clock.Now())
		return !ok
	}, "expired tokens to be forgotten")
	if _, err := h.get(t, tok[2].GetToken()); wqCode(err) != messages.CodeTokenInvalid {
		t.Fatalf("forgotten token: %v", err)
	}
	if _, err := h.get(t, "no-such-token"); wqCode(err) != messages.CodeTokenInvalid {
		t.Fatalf("unknown token: %v", err)
	}
}

func TestQueueConcurrentIssue(t *testing.T) {
	h := startQueue(t, actortest.NewMemJournal(), newWQClock(), QueueConfig{ActiveTokens: 10, TokenIdleTTL: time.Hour, WaitIdleTTL: time.Hour})
	const users = 200
	start := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	byUser := map[int64]map[int64]bool{} // user → the token ids it was given
	for i := range users * 3 {
		wg.Go(func() {
			<-start
			u := int64(i%users + 1)
			res, err := wqRequest[*messages.TokenResult](t, h.local, "queue", "main", &messages.IssueToken{UserId: u})
			if err != nil {
				t.Errorf("issue: %v", err)
				return
			}
			mu.Lock()
			if byUser[u] == nil {
				byUser[u] = map[int64]bool{}
			}
			byUser[u][res.GetToken().GetId()] = true
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	positions := map[int64]bool{}
	actives := 0
	for u, ids := range byUser {
		if len(ids) != 1 {
			t.Fatalf("user %d got %d tokens", u, len(ids))
		}
		// Each answer had a fresh secret, the last one written wins: ask
		// once more for one that works (the place does not change).
		for range ids {
			st, pos := h.status(t, h.issue(t, u).GetToken())
			switch st {
			case tsActive:
				actives++
			case tsWait:
				positions[pos] = true
			}
		}
	}
	if actives != 10 || len(positions) != users-10 || !positions[1] || !positions[users-10] {
		t.Fatalf("%d active, %d distinct positions", actives, len(positions))
	}
}

// TestQueueRestart checks that the line and the active set survive a
// restart, that a second incarnation has the same state, and that the table
// is rebuilt.
func TestQueueRestart(t *testing.T) {
	j := actortest.NewMemJournal()
	clock := newWQClock()
	cfg := QueueConfig{ActiveTokens: 3, TokenIdleTTL: time.Hour, WaitIdleTTL: time.Hour, SnapshotEvery: 7}
	h := startQueue(t, j, clock, cfg)
	var toks []string
	for u := int64(1); u <= 12; u++ {
		toks = append(toks, h.issue(t, u).GetToken())
	}
	for _, i := range []int{1, 5, 8} { // one ACTIVE paid, two WAIT gone
		if _, err := wqRequest[*messages.TokenResult](t, h.local, "queue", "main", &messages.ExpireToken{Token: toks[i], Reason: ExpiredReasonPaid}); err != nil {
			t.Fatal(err)
		}
	}
	before0, err := h.get(t, toks[0])
	if err != nil {
		t.Fatal(err)
	}
	before := map[string][2]int64{}
	for _, tok := range toks {
		st, pos := h.status(t, tok)
		before[tok] = [2]int64{int64(st), pos}
	}
	// Snapshots are saved off the actor's goroutine: wait for one.
	actortest.Eventually(t, 5*time.Second, func() bool { return wqSnapshotSeq(j, queueJournalPrefix+"main") > 0 }, "a snapshot")
	h.stop()
	live := h.tracked.last().(*queueActor).model.Snapshot()

	clock.Advance(time.Minute)
	h2 := startQueue(t, j, clock, cfg)
	for _, tok := range toks {
		st, pos := h2.status(t, tok)
		if b := before[tok]; b != [2]int64{int64(st), pos} {
			t.Fatalf("token %s: %v at %d after restart, want %v", tok, st, pos, b)
		}
	}
	if h2.tokens.Active() != 3 || h2.tokens.Waiting() != 6 {
		t.Fatalf("rebuilt table: active %d waiting %d", h2.tokens.Active(), h2.tokens.Waiting())
	}
	if c, ok := h2.tokens.Check(toks[1], clock.Now()); !ok || !c.PaidExpired {
		t.Fatalf("paid token after restart: %+v", c)
	}
	// Idle clocks are not re-armed at recovery: the expiry shown before
	// holds (the clock moved a minute, nobody used the token).
	tok, _ := h2.get(t, toks[0])
	if tok.GetExpiresAtMs() != before0.GetExpiresAtMs() || tok.GetExpiresAtMs() != before0.GetCreatedAtMs()+time.Hour.Milliseconds() {
		t.Fatalf("expires at %d after restart, want %d as before", tok.GetExpiresAtMs(), before0.GetExpiresAtMs())
	}
	// Replaying the journal alone gives the same state as snapshot + journal.
	m := newQueueModel(cfg.withDefaults())
	for _, e := range journaledEvents(t, j, queueJournalPrefix+"main") {
		m.Apply(e)
	}
	if !proto.Equal(m.Snapshot(), live) {
		t.Fatalf("replayed %v\nwant %v", m.Snapshot(), live)
	}
	// The second incarnation recovered the same state; since then it
	// journaled the polls above, which only move live tokens' expiry.
	h2.stop()
	recovered := h2.tracked.last().(*queueActor).model.Snapshot().(*messages.QueueSnapshot)
	for _, tok := range append(recovered.GetTokens(), live.(*messages.QueueSnapshot).GetTokens()...) {
		if tok.GetStatus() != tsGone {
			tok.ExpiresAtMs = 0
		}
	}
	if !proto.Equal(live, recovered) {
		t.Fatalf("recovered %v\nwant %v", recovered, live)
	}
}

// TestQueueRestartAdmits checks that slots freed while nothing ran (a lower
// setting, or a crash between writes) are filled when the queue recovers.
func TestQueueRestartAdmits(t *testing.T) {
	j := actortest.NewMemJournal()
	clock := newWQClock()
	h := startQueue(t, j, clock, QueueConfig{ActiveTokens: 1, TokenIdleTTL: time.Hour, WaitIdleTTL: time.Hour})
	a, b, c := h.issue(t, 1), h.issue(t, 2), h.issue(t, 3)
	h.stop()
	h2 := startQueue(t, j, clock, QueueConfig{ActiveTokens: 2, TokenIdleTTL: time.Hour, WaitIdleTTL: time.Hour})
	for tok, want := range map[string]messages.TokenStatus{a.GetToken(): tsActive, b.GetToken(): tsActive, c.GetToken(): tsWait} {
		if st, _ := h2.status(t, tok); st != want {
			t.Fatalf("%s is %v, want %v", tok, st, want)
		}
	}
}
