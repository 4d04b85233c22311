package actors

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"
	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/cluster"
	"github.com/concert/ticketing/messages"
)

// Queue defaults, used where QueueConfig leaves a field zero.
const (
	queueDefaultActiveTokens = 100
	queueDefaultTokenIdleTTL = 10 * time.Minute
	queueDefaultWaitIdleTTL  = 5 * time.Minute
	queueDefaultRetention    = time.Hour
	queueDefaultSnapshot     = 1000
	queueJournalPrefix       = "queue/"
	queueTokenBytes          = 16 // 128 random bits per token

	// ExpiredReasonPaid is the ExpireToken reason of the payment flow; a token
	// expired for it reports TokenCheck.PaidExpired.
	ExpiredReasonPaid = "paid"
	// ExpiredReasonIdle is the reason of an ACTIVE token unused for TokenIdleTTL.
	ExpiredReasonIdle = "idle"
	// ExpiredReasonAbandoned is the reason of a WAIT token not polled for WaitIdleTTL.
	ExpiredReasonAbandoned = "abandoned"
)

// QueueConfig configures the queue manager (kind "queue", identity "main",
// journal id "queue/main").
type QueueConfig struct {
	Journal Journal
	// Tokens is the table the queue manager keeps in step with its state, for
	// request handlers to validate tokens without messaging it (default: a
	// new one, which only the actor can see).
	Tokens *TokenTable
	// ActiveTokens is the most tokens ACTIVE at once (default 100).
	ActiveTokens int
	// TokenIdleTTL expires an ACTIVE token unused this long (default 10m);
	// WaitIdleTTL takes a WAIT token not polled this long out of the line
	// (default 5m).
	TokenIdleTTL, WaitIdleTTL time.Duration
	// ExpiredRetention is how long an EXPIRED token is still reported
	// (default 1h).
	ExpiredRetention time.Duration
	// SnapshotEvery is the number of events between snapshots (default 1000;
	// negative: never).
	SnapshotEvery int
	Now           func() time.Time
	// Random is the source of token strings (default crypto/rand.Reader).
	Random io.Reader
	Logger *slog.Logger
}

func (c QueueConfig) withDefaults() QueueConfig {
	if c.Tokens == nil {
		c.Tokens = NewTokenTable()
	}
	if c.ActiveTokens <= 0 {
		c.ActiveTokens = queueDefaultActiveTokens
	}
	if c.TokenIdleTTL <= 0 {
		c.TokenIdleTTL = queueDefaultTokenIdleTTL
	}
	if c.WaitIdleTTL <= 0 {
		c.WaitIdleTTL = queueDefaultWaitIdleTTL
	}
	if c.ExpiredRetention <= 0 {
		c.ExpiredRetention = queueDefaultRetention
	}
	if c.SnapshotEvery == 0 {
		c.SnapshotEvery = queueDefaultSnapshot
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Random == nil {
		c.Random = rand.Reader
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// tickInterval is how often the queue manager looks for idle tokens: a
// quarter of the shorter TTL, at most a second and at least 10ms.
func (c QueueConfig) tickInterval() time.Duration {
	d := min(c.TokenIdleTTL, c.WaitIdleTTL) / 4
	return min(max(d, 10*time.Millisecond), time.Second)
}

// NewQueueProducer returns the producer of the queue manager for
// cluster.NewLocal (kind "queue"; use the single identity "main"). It never
// passivates.
//
// It answers *messages.TokenResult on success and a bare *messages.Rejection
// on refusal, once the state the answer rests on is durable.
func NewQueueProducer(cfg QueueConfig) cluster.Producer {
	cfg = cfg.withDefaults()
	return func(identity string) actor.Actor {
		q := &queueActor{cfg: cfg, model: newQueueModel(cfg)}
		q.j = NewJournaled(JournaledOptions{
			ID:            queueJournalPrefix + identity,
			Journal:       cfg.Journal,
			Model:         q.model,
			SnapshotEvery: cfg.SnapshotEvery,
			Logger:        cfg.Logger.With("actor", queueJournalPrefix+identity),
		})
		return q
	}
}

// queueTick makes the queue manager expire idle tokens and admit the line.
type queueTick struct{}

type queueActor struct {
	cfg        QueueConfig
	model      *queueModel
	j          *Journaled
	cancelTick scheduler.CancelFunc
	ticks      atomic.Int64 // ticks handled, for tests and diagnostics
}

// Receive implements actor.Actor.
func (q *queueActor) Receive(ctx actor.Context) {
	if q.j.Intercept(ctx) {
		return
	}
	now := q.cfg.Now()
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		// Recovered: the table follows the recovered state, idle clocks
		// restart now, and slots freed meanwhile go to the line.
		q.model.syncTable(now)
		q.model.prune(now)
		q.j.Persist(q.model.admissions(now.UnixMilli(), 0, nil, 0)...)
		every := q.cfg.tickInterval()
		q.cancelTick = scheduler.NewTimerScheduler(ctx.ActorSystem().Root).
			SendRepeatedly(every, every, ctx.Self(), &queueTick{})
	case *actor.Stopping, *actor.Restarting, *actor.Stopped:
		if q.cancelTick != nil {
			q.cancelTick()
			q.cancelTick = nil
		}
	case *queueTick:
		q.model.prune(now)
		q.j.Persist(q.model.decideTick(now)...)
		q.ticks.Add(1)
	case *messages.IssueToken:
		events, t, rej := q.model.decideIssue(msg, now, q.cfg.Random)
		if rej != nil {
			q.j.Reply(ctx, rej)
			return
		}
		q.j.Persist(events...)
		if t == nil {
			t = q.model.byToken[events[0].(*messages.TokenIssued).GetToken()]
		}
		q.j.Reply(ctx, &messages.TokenResult{Token: q.model.view(t)})
	case *messages.GetToken:
		t := q.model.byToken[msg.GetToken()]
		if t == nil {
			q.j.Reply(ctx, messages.Reject(messages.CodeTokenInvalid, "unknown token"))
			return
		}
		q.model.touch(t, now)
		q.j.Reply(ctx, &messages.TokenResult{Token: q.model.view(t)})
	case *messages.ExpireToken:
		t := q.model.byToken[msg.GetToken()]
		if t == nil {
			q.j.Reply(ctx, messages.Reject(messages.CodeTokenInvalid, "unknown token"))
			return
		}
		q.j.Persist(q.model.decideExpire(t, msg.GetReason(), now)...)
		q.j.Reply(ctx, &messages.TokenResult{Token: q.model.view(t)})
	case actor.SystemMessage, actor.AutoReceiveMessage:
	case proto.Message:
		q.j.Reply(ctx, messages.Reject(messages.CodeInvalidRequest, "queue cannot handle %T", msg))
	}
}

// qtoken is one token in the queue manager's state.
type qtoken struct {
	id, userID int64
	token      string
	status     messages.TokenStatus
	createdMs  int64
	updatedMs  int64 // last status change
	lineNo     int64 // place in waitLine while WAIT
	paid       bool  // expired because its user paid
	entry      *tokenEntry
}

// queueModel is the queue manager's domain state. Apply is its only mutator
// of journaled state and keeps the TokenTable in step; the last use or poll
// of a token lives in its table entry (not journaled), and prune forgets
// tokens expired longer ago than the retention.
type queueModel struct {
	// settings
	tokens       *TokenTable
	activeTokens int
	tokenIdle    time.Duration
	waitIdle     time.Duration
	retention    time.Duration

	// state
	nextID  int64
	byID    map[int64]*qtoken
	byToken map[string]*qtoken
	byUser  map[int64]*qtoken // the user's live (WAIT or ACTIVE) token
	active  map[int64]*qtoken
	line    waitLine
	expired []*qtoken // in expiry order, for pruning
}

var _ Model = (*queueModel)(nil)

func newQueueModel(cfg QueueConfig) *queueModel {
	m := &queueModel{
		tokens:       cfg.Tokens,
		activeTokens: cfg.ActiveTokens,
		tokenIdle:    cfg.TokenIdleTTL,
		waitIdle:     cfg.WaitIdleTTL,
		retention:    cfg.ExpiredRetention,
	}
	m.reset()
	return m
}

func (m *queueModel) reset() {
	m.nextID = 0
	m.byID = map[int64]*qtoken{}
	m.byToken = map[string]*qtoken{}
	m.byUser = map[int64]*qtoken{}
	m.active = map[int64]*qtoken{}
	m.line = waitLine{}
	m.expired = nil
}

// view is the token as callers see it.
// It is the stored token plus what is derived on read: the expiry and,
// while waiting, the position in line.
func (m *queueModel) view(t *qtoken) *messages.Token {
	v := m.stored(t)
	v.ExpiresAtMs = t.updatedMs
	last := time.Unix(0, t.entry.last.Load()).UnixMilli()
	switch t.status {
	case messages.TokenStatus_TOKEN_WAIT:
		v.Position = m.line.position(t)
		v.ExpiresAtMs = last + m.waitIdle.Milliseconds()
	case messages.TokenStatus_TOKEN_ACTIVE:
		v.ExpiresAtMs = last + m.tokenIdle.Milliseconds()
	}
	return v
}

// touch records a use or a poll of a live token.
func (m *queueModel) touch(t *qtoken, now time.Time) {
	if t.status != messages.TokenStatus_TOKEN_EXPIRED {
		t.entry.touch(now.UnixNano())
	}
}

// decideIssue answers IssueToken: the user's live token (touched, no events),
// or a new token in line — activated in the same events if a slot is free.
func (m *queueModel) decideIssue(c *messages.IssueToken, now time.Time, random io.Reader) ([]proto.Message, *qtoken, *messages.Rejection) {
	if c.GetUserId() <= 0 {
		return nil, nil, messages.Reject(messages.CodeInvalidRequest, "user id must be positive, not %d", c.GetUserId())
	}
	if t := m.byUser[c.GetUserId()]; t != nil {
		m.touch(t, now)
		return nil, t, nil
	}
	token, err := m.newTokenString(random)
	if err != nil {
		return nil, nil, messages.Reject(messages.CodeStoreUnavailable, "cannot issue a token: %v", err)
	}
	id, nowMs := m.nextID+1, now.UnixMilli()
	events := []proto.Message{&messages.TokenIssued{TokenId: id, UserId: c.GetUserId(), Token: token, AtMs: nowMs}}
	return append(events, m.admissions(nowMs, 0, nil, id)...), nil, nil
}

func (m *queueModel) newTokenString(random io.Reader) (string, error) {
	b := make([]byte, queueTokenBytes)
	for range 4 {
		if _, err := io.ReadFull(random, b); err != nil {
			return "", fmt.Errorf("read random token: %w", err)
		}
		s := base64.RawURLEncoding.EncodeToString(b)
		if m.byToken[s] == nil {
			return s, nil
		}
	}
	return "", fmt.Errorf("random source keeps repeating itself")
}

// decideExpire expires a token (no events if it already is) and admits the
// head of the line into the slot it frees.
func (m *queueModel) decideExpire(t *qtoken, reason string, now time.Time) []proto.Message {
	nowMs := now.UnixMilli()
	switch t.status {
	case messages.TokenStatus_TOKEN_ACTIVE:
		return append([]proto.Message{&messages.TokenExpired{TokenId: t.id, AtMs: nowMs, Reason: reason}},
			m.admissions(nowMs, 1, nil, 0)...)
	case messages.TokenStatus_TOKEN_WAIT:
		return append([]proto.Message{&messages.TokenExpired{TokenId: t.id, AtMs: nowMs, Reason: reason}},
			m.admissions(nowMs, 0, map[int64]bool{t.id: true}, 0)...)
	}
	return nil
}

// decideTick expires ACTIVE tokens unused for TokenIdleTTL and WAIT tokens
// not polled for WaitIdleTTL, and admits the line into the freed slots.
func (m *queueModel) decideTick(now time.Time) []proto.Message {
	nowNs, nowMs := now.UnixNano(), now.UnixMilli()
	var events []proto.Message
	freed := 0
	for _, t := range m.active {
		if t.entry.last.Load()+int64(m.tokenIdle) <= nowNs {
			events = append(events, &messages.TokenExpired{TokenId: t.id, AtMs: nowMs, Reason: ExpiredReasonIdle})
			freed++
		}
	}
	// Map order is random; the journal should not be.
	sort.Slice(events, func(i, k int) bool {
		return events[i].(*messages.TokenExpired).GetTokenId() < events[k].(*messages.TokenExpired).GetTokenId()
	})
	var gone map[int64]bool
	m.line.each(func(t *qtoken) bool {
		if t.entry.last.Load()+int64(m.waitIdle) <= nowNs {
			events = append(events, &messages.TokenExpired{TokenId: t.id, AtMs: nowMs, Reason: ExpiredReasonAbandoned})
			if gone == nil {
				gone = map[int64]bool{}
			}
			gone[t.id] = true
		}
		return true
	})
	return append(events, m.admissions(nowMs, freed, gone, 0)...)
}

// admissions activates heads of the line while slots are free. freed counts
// ACTIVE tokens expiring in the same events, gone the WAIT tokens leaving
// with them, and newID (if not 0) a token issued in the same events, last in
// line.
func (m *queueModel) admissions(nowMs int64, freed int, gone map[int64]bool, newID int64) []proto.Message {
	free := m.activeTokens - len(m.active) + freed
	if free <= 0 {
		return nil
	}
	var events []proto.Message
	m.line.each(func(t *qtoken) bool {
		if !gone[t.id] {
			events = append(events, &messages.TokenActivated{TokenId: t.id, AtMs: nowMs})
			free--
		}
		return free > 0
	})
	if free > 0 && newID != 0 {
		events = append(events, &messages.TokenActivated{TokenId: newID, AtMs: nowMs})
	}
	return events
}

// Apply implements Model.
func (m *queueModel) Apply(event proto.Message) {
	switch e := event.(type) {
	case *messages.TokenIssued:
		t := &qtoken{
			id:        e.GetTokenId(),
			userID:    e.GetUserId(),
			token:     e.GetToken(),
			status:    messages.TokenStatus_TOKEN_WAIT,
			createdMs: e.GetAtMs(),
			updatedMs: e.GetAtMs(),
		}
		m.nextID = max(m.nextID, t.id)
		m.byID[t.id] = t
		m.byToken[t.token] = t
		m.byUser[t.userID] = t
		m.line.push(t)
		t.entry = m.tokens.put(t.token, t.id, t.userID, t.status, false, msToNanos(e.GetAtMs()))
	case *messages.TokenActivated:
		t := m.byID[e.GetTokenId()]
		if t == nil || t.status != messages.TokenStatus_TOKEN_WAIT {
			return
		}
		m.line.remove(t)
		t.status, t.updatedMs = messages.TokenStatus_TOKEN_ACTIVE, e.GetAtMs()
		m.active[t.id] = t
		// The idle clock of an ACTIVE token starts when it is admitted.
		t.entry.last.Store(msToNanos(e.GetAtMs()))
		m.tokens.setStatus(t.entry, t.status, false)
	case *messages.TokenExpired:
		t := m.byID[e.GetTokenId()]
		if t == nil || t.status == messages.TokenStatus_TOKEN_EXPIRED {
			return
		}
		if t.status == messages.TokenStatus_TOKEN_WAIT {
			m.line.remove(t)
		}
		delete(m.active, t.id)
		if m.byUser[t.userID] == t {
			delete(m.byUser, t.userID)
		}
		t.status, t.updatedMs = messages.TokenStatus_TOKEN_EXPIRED, e.GetAtMs()
		t.paid = e.GetReason() == ExpiredReasonPaid
		m.expired = append(m.expired, t)
		m.tokens.setStatus(t.entry, t.status, t.paid)
	}
}

// prune forgets tokens expired longer ago than the retention, in the model
// and the table. It is memory housekeeping, not a journaled change: an
// EXPIRED token past its retention is never reported again either way.
func (m *queueModel) prune(now time.Time) {
	limit := now.Add(-m.retention).UnixMilli()
	n := 0
	for _, t := range m.expired {
		if t.updatedMs > limit {
			break
		}
		n++
		delete(m.byID, t.id)
		delete(m.byToken, t.token)
		m.tokens.remove(t.token)
	}
	clear(m.expired[:n]) // let the collector have them
	m.expired = m.expired[n:]
}

// syncTable makes the table hold exactly the model's tokens, with every
// live token's last use or poll set to now (recovery restarts idle clocks).
func (m *queueModel) syncTable(now time.Time) {
	for _, t := range m.byID {
		last := now.UnixNano()
		if t.status == messages.TokenStatus_TOKEN_EXPIRED {
			last = msToNanos(t.updatedMs)
		}
		t.entry = m.tokens.put(t.token, t.id, t.userID, t.status, t.paid, last)
	}
	m.tokens.retain(func(token string) bool { return m.byToken[token] != nil })
}

// Snapshot implements Model: ACTIVE tokens by id, then WAIT tokens in line
// order, then EXPIRED ones in expiry order.
func (m *queueModel) Snapshot() proto.Message {
	s := &messages.QueueSnapshot{NextTokenId: m.nextID}
	ids := make([]int64, 0, len(m.active))
	for id := range m.active {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, k int) bool { return ids[i] < ids[k] })
	for _, id := range ids {
		s.Tokens = append(s.Tokens, m.stored(m.active[id]))
	}
	m.line.each(func(t *qtoken) bool {
		s.Tokens = append(s.Tokens, m.stored(t))
		return true
	})
	for _, t := range m.expired {
		s.Tokens = append(s.Tokens, m.stored(t))
	}
	return s
}

func (m *queueModel) stored(t *qtoken) *messages.Token {
	v := &messages.Token{
		Id:          t.id,
		UserId:      t.userID,
		Token:       t.token,
		Status:      t.status,
		CreatedAtMs: t.createdMs,
		UpdateAtMs:  t.updatedMs,
	}
	if t.paid {
		v.ExpiredReason = ExpiredReasonPaid
	}
	return v
}

// Restore implements Model.
func (m *queueModel) Restore(snapshot proto.Message) error {
	s, ok := snapshot.(*messages.QueueSnapshot)
	if !ok {
		return fmt.Errorf("queue restore: snapshot is %T, want *messages.QueueSnapshot", snapshot)
	}
	m.reset()
	m.nextID = s.GetNextTokenId()
	for _, v := range s.GetTokens() {
		t := &qtoken{
			id:        v.GetId(),
			userID:    v.GetUserId(),
			token:     v.GetToken(),
			status:    v.GetStatus(),
			createdMs: v.GetCreatedAtMs(),
			updatedMs: v.GetUpdateAtMs(),
			paid:      v.GetExpiredReason() == ExpiredReasonPaid,
		}
		if m.byToken[t.token] != nil || m.byID[t.id] != nil {
			return fmt.Errorf("queue restore: token %d appears twice", t.id)
		}
		m.byID[t.id] = t
		m.byToken[t.token] = t
		switch t.status {
		case messages.TokenStatus_TOKEN_WAIT:
			m.byUser[t.userID] = t
			m.line.push(t)
		case messages.TokenStatus_TOKEN_ACTIVE:
			m.byUser[t.userID] = t
			m.active[t.id] = t
		case messages.TokenStatus_TOKEN_EXPIRED:
			m.expired = append(m.expired, t)
		default:
			return fmt.Errorf("queue restore: token %d has status %v", t.id, t.status)
		}
		t.entry = m.tokens.put(t.token, t.id, t.userID, t.status, t.paid, msToNanos(t.updatedMs))
	}
	return nil
}

func msToNanos(ms int64) int64 { return ms * int64(time.Millisecond) }

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
