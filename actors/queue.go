package actors

import (
	"crypto/rand"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
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
	queueDefaultExpiredKeep  = 10_000
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
	// Tokens is the table the queue manager publishes its durable state
	// into, for request handlers to validate tokens without messaging it
	// (default: a new one, which only the actor can see).
	Tokens *TokenTable
	// ActiveTokens is the most tokens ACTIVE at once (default 100).
	ActiveTokens int
	// TokenIdleTTL expires an ACTIVE token unused this long (default 10m);
	// WaitIdleTTL takes a WAIT token not polled this long out of the line
	// (default 5m).
	TokenIdleTTL, WaitIdleTTL time.Duration
	// ExpiredRetention is how long an EXPIRED token is still reported
	// (default 1h), within ExpiredKeep.
	ExpiredRetention time.Duration
	// ExpiredKeep bounds the EXPIRED tokens still reported: the most recent
	// ExpiredKeep expired by a payment and as many expired otherwise
	// (default 10,000 each). They are kept in the state and its snapshot so
	// that a client that just paid can still read its reservation with its
	// token, and one whose token lapsed is told it expired; a token beyond
	// the bound is "unknown" (TOKEN_INVALID either way). Live tokens are
	// never dropped.
	ExpiredKeep int
	// SnapshotEvery is the number of events between snapshots (default 1000;
	// negative: never).
	SnapshotEvery int
	// SnapshotAdmission, if set, is shared by the snapshots of all
	// journaled actors of the node (JournaledOptions.SnapshotAdmission).
	SnapshotAdmission *Admission
	// TickInterval is how often the queue manager collects token uses and
	// looks for idle tokens (default: a quarter of the shorter TTL, at most
	// 1 s and at least 10 ms). It is the resolution of journaled last use.
	TickInterval time.Duration
	Now          func() time.Time
	// Random is the source of token strings (default crypto/rand.Reader).
	Random io.Reader
	Logger *slog.Logger
	// Feed, if set, is this node's token feed: the manager pushes its
	// durable changes to the other nodes' tables through it
	// (tokenfeed_queue.go). Nil on a node alone.
	Feed *TokenFeed
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
	if c.ExpiredKeep <= 0 {
		c.ExpiredKeep = queueDefaultExpiredKeep
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

// tickInterval is how often the queue manager collects token uses and looks
// for idle tokens: TickInterval, or a quarter of the shorter TTL, at most a
// second and at least 10ms.
func (c QueueConfig) tickInterval() time.Duration {
	if c.TickInterval > 0 {
		return c.TickInterval
	}
	d := min(c.TokenIdleTTL, c.WaitIdleTTL) / 4
	return min(max(d, 10*time.Millisecond), time.Second)
}

// NewQueueProducer returns the producer of the queue manager for
// cluster.NewLocal (kind "queue"; use the single identity "main"). It never
// passivates, and while a token is live its reminder (NextDue) brings it
// back after a crash without any request.
//
// It answers *messages.TokenResult on success and a bare *messages.Rejection
// on refusal, once the state the answer rests on is durable; a command whose
// events cannot be written now (STORE_UNAVAILABLE) or at all
// (INVALID_REQUEST) is refused at once with nothing changed.
func NewQueueProducer(cfg QueueConfig) cluster.Producer {
	cfg = cfg.withDefaults()
	return func(identity string) actor.Actor {
		q := &queueActor{cfg: cfg, model: newQueueModel(cfg)}
		q.j = NewJournaled(JournaledOptions{
			ID:                queueJournalPrefix + identity,
			Journal:           cfg.Journal,
			Model:             q.model,
			SnapshotEvery:     cfg.SnapshotEvery,
			SnapshotAdmission: cfg.SnapshotAdmission,
			Logger:            cfg.Logger, // Journaled names the actor in each line
		})
		return q
	}
}

type queueActor struct {
	cfg      QueueConfig
	model    *queueModel
	j        *Journaled
	timer    *time.Timer  // the next tick (Journaled.After: this incarnation only)
	draining bool         // a chunked expiry continues once its chunk is durable
	ticks    atomic.Int64 // ticks handled, for tests and diagnostics
	feed     feedState    // subscribers of the token feed (tokenfeed_queue.go)
}

// Receive implements actor.Actor.
func (q *queueActor) Receive(ctx actor.Context) {
	defer q.j.Guard(ctx)
	if q.j.Intercept(ctx) {
		return
	}
	now := q.cfg.Now()
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		// Recovered: publish the end state, then expire what fell due while
		// nothing ran (idle clocks are not re-armed) and fill free slots.
		q.model.publishAll(q.cfg.Tokens)
		q.feedStarted(ctx)
		q.tick()
	case *actor.Stopping, *actor.Restarting, *actor.Stopped:
		if q.timer != nil {
			q.timer.Stop()
			q.timer = nil
		}
		q.feedStopped()
	case *messages.IssueToken:
		events, secret, rej := q.model.decideIssue(msg, now, q.cfg.Random)
		if rej != nil {
			q.j.Reply(ctx, rej)
			return
		}
		if rej := q.persist(events...); rej != nil {
			refuse(ctx, rej)
			return
		}
		// The secret is answered once its digest is durable (Reply waits),
		// to this caller only.
		v := q.model.view(q.model.byToken[digestOf(secret)])
		v.Token = secret
		q.j.Reply(ctx, &messages.TokenResult{Token: v})
	case *messages.GetToken:
		t := q.model.byToken[digestOf(msg.GetToken())]
		if t == nil || msg.GetToken() == "" {
			if msg.GetToken() == "" || q.j.ConfirmLatest(ctx) {
				q.j.Reply(ctx, messages.Reject(messages.CodeTokenInvalid, "unknown token"))
			}
			return
		}
		q.model.touch(t, now)
		v := q.model.view(t)
		v.Token = msg.GetToken() // the caller's own secret
		q.j.Reply(ctx, &messages.TokenResult{Token: v})
	case *messages.ExpireToken:
		t := q.model.byToken[digestOf(msg.GetToken())]
		if t == nil {
			if q.j.ConfirmLatest(ctx) { // else held: a stale copy's miss
				q.j.Reply(ctx, messages.Reject(messages.CodeTokenInvalid, "unknown token"))
			}
			return
		}
		if rej := q.persist(q.model.decideExpire(t, msg.GetReason(), now)...); rej != nil {
			refuse(ctx, rej)
			return
		}
		v := q.model.view(t)
		v.Token = msg.GetToken()
		q.j.Reply(ctx, &messages.TokenResult{Token: v})
	case actor.SystemMessage, actor.AutoReceiveMessage:
	case proto.Message:
		if q.receiveFeed(ctx, msg) {
			return
		}
		q.j.Reply(ctx, messages.Reject(messages.CodeInvalidRequest, "queue cannot handle %T", msg))
	}
}

// tick does the periodic work and arms the next tick on this incarnation.
func (q *queueActor) tick() {
	q.work()
	q.timer = q.j.After(q.cfg.tickInterval(), q.tick)
}

// work forgets expired tokens past their retention, journals the token uses
// collected since the last time, then expires idle tokens and admits the
// line. A chunk that left work continues as soon as it is durable (and no
// other chunk is decided meanwhile, so a write holds at most one). A
// refused write changes nothing; the next tick tries again.
func (q *queueActor) work() {
	defer q.ticks.Add(1)
	now := q.cfg.Now()
	q.model.prune(now)
	q.publishWhenDurable()
	if touched := q.model.touchEvents(q.cfg.Tokens); len(touched) > 0 {
		if rej := q.persist(touched...); rej != nil {
			// No expiry either: it could rest on uses not journaled.
			q.cfg.Logger.Warn("token uses not recorded; retrying at the next tick", "rejection", rej.GetMessage())
			return
		}
		q.model.touchesRecorded()
	}
	if q.draining {
		return // a chunk awaits durability; its continuation decides next
	}
	events, more := q.model.decideTick(now)
	if rej := q.persist(events...); rej != nil {
		q.cfg.Logger.Warn("expiries and admissions not recorded; retrying at the next tick", "rejection", rej.GetMessage())
		return
	}
	if more {
		q.draining = true
		post := q.j.Post()
		q.j.AfterDurable(func() {
			// Through the mailbox, so that waiting requests go first.
			post(func() {
				q.draining = false
				q.work()
			})
		})
	}
}

// refuse answers a command whose events Persist refused. Unlike Reply it
// does not wait for earlier writes: the command changed nothing and its
// answer rests on no state, so an overloaded actor answers at once.
func refuse(ctx actor.Context, rej *messages.Rejection) {
	if ctx.Sender() != nil {
		ctx.Respond(rej)
	}
}

// persist applies and queues events (none: nothing to do) and publishes
// what they changed in the token table once they are durable. A rejection
// means nothing changed.
func (q *queueActor) persist(events ...proto.Message) *messages.Rejection {
	if len(events) == 0 {
		return nil
	}
	if rej := q.j.Persist(events...); rej != nil {
		return rej
	}
	q.publishWhenDurable()
	return nil
}

// publishWhenDurable hands the changes applied so far to the token table
// once they are durable; never if the write fails.
func (q *queueActor) publishWhenDurable() {
	changes := q.model.takeChanges()
	if len(changes) == 0 {
		return
	}
	tokens := q.cfg.Tokens
	q.j.AfterDurable(func() {
		tokens.apply(changes)
		q.feedPublish(changes)
	})
}
