package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/concert/ticketing/cluster"
	"github.com/concert/ticketing/cluster/clusterpb"
	"github.com/concert/ticketing/messages"
)

// Token feed defaults.
const (
	feedDefaultReport    = 250 * time.Millisecond
	feedDefaultSubscribe = time.Second
	feedDefaultResync    = 5 * time.Minute
	feedRequestTimeout   = 2 * time.Second
	// feedLookupTimeout bounds the one request of a lookup, however long
	// its checks may wait (the default REQUEST_TIMEOUT).
	feedLookupTimeout = 5 * time.Second
	feedUnknownTTL    = 2 * time.Second
	feedUnknownMax    = 100_000
	feedSnapshotChunk = 5000
	feedSubscriberTTL = 10 * time.Second
	// feedSnapshotGrace is how long the queue manager waits for a node to
	// apply the snapshot it was sent before it sends another unasked.
	feedSnapshotGrace = 10 * time.Second
	// feedReportBackoffMax is the longest wait between failed use reports.
	feedReportBackoffMax = 5 * time.Second
)

// TokenFeed keeps this node's TokenTable in step with the queue manager,
// which runs on one node of the cluster (any node, and it moves). Token
// checks stay in-process: Check reads the table and never waits for another
// node, except once for a token the table has not heard of yet.
//
// The queue manager pushes each durable change to every subscribed node as
// a FeedUpdate numbered within its incarnation (the epoch); a node applies
// them in order. It asks for a full snapshot when it sees a gap, another
// epoch (the manager moved or restarted), a topology change, or every
// ResyncEvery. It subscribes again every second, so a new incarnation
// learns of it. Uses seen by this node's checks are reported to the
// manager in batches (FeedTouches) every ReportEvery, so idle expiry sees
// uses on every node.
//
// While the queue manager runs in this process it writes the table itself
// (as on a single node) and the feed stands aside.
type TokenFeed struct {
	cfg    TokenFeedConfig
	table  *TokenTable
	pid    *actor.PID
	local  atomic.Uint64 // incarnation of the queue manager running here; 0 if none
	epoch  atomic.Uint64 // mirrored from the feed actor, for the subscriber loop
	seq    atomic.Int64
	resync atomic.Bool // ask for a snapshot at the next subscribe
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	start  sync.Once

	unknownMu sync.Mutex
	unknown   map[string]time.Time // tokens the manager did not know, until
	flightMu  sync.Mutex
	flight    map[string]*lookupCall

	lag       prometheus.Summary
	resyncs   prometheus.Counter
	lookups   prometheus.Counter
	lagMu     sync.Mutex
	lagSample []time.Duration // recent lags, for LagQuantile
}

// TokenFeedConfig configures NewTokenFeed.
type TokenFeedConfig struct {
	Table  *TokenTable
	Router cluster.Router
	System *actor.ActorSystem
	// ReportEvery is how often token uses are reported (default 250 ms);
	// SubscribeEvery how often the node subscribes again (default 1 s);
	// ResyncEvery how often it takes a full snapshot regardless (5 min).
	ReportEvery, SubscribeEvery, ResyncEvery time.Duration
	Registerer                               prometheus.Registerer
	Logger                                   *slog.Logger
}

type lookupCall struct {
	done  chan struct{}
	check TokenCheck
	err   error
}

// NewTokenFeed spawns the node's feed actor; Start begins subscribing.
func NewTokenFeed(cfg TokenFeedConfig) *TokenFeed {
	if cfg.ReportEvery <= 0 {
		cfg.ReportEvery = feedDefaultReport
	}
	if cfg.SubscribeEvery <= 0 {
		cfg.SubscribeEvery = feedDefaultSubscribe
	}
	if cfg.ResyncEvery <= 0 {
		cfg.ResyncEvery = feedDefaultResync
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	f := &TokenFeed{
		cfg: cfg, table: cfg.Table,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		unknown: map[string]time.Time{}, flight: map[string]*lookupCall{},
		lag: prometheus.NewSummary(prometheus.SummaryOpts{
			Name:       "token_feed_lag_seconds",
			Help:       "Time from a token change being published by the queue manager to this node's table showing it.",
			Objectives: map[float64]float64{0.5: 0.01, 0.99: 0.001},
			MaxAge:     10 * time.Minute,
		}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "token_feed_resyncs_total", Help: "Full snapshots this node's token table took from the queue manager.",
		}),
		lookups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "token_feed_lookups_total", Help: "Tokens looked up from the queue manager because this node had not heard of them.",
		}),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(f.lag, f.resyncs, f.lookups,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "token_feed_local", Help: "1 while the queue manager runs on this node (its table is the manager's own).",
			}, func() float64 {
				if f.local.Load() != 0 {
					return 1
				}
				return 0
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "token_feed_seq", Help: "Last queue manager update applied to this node's table (0 while local).",
			}, func() float64 { return float64(f.seq.Load()) }))
	}
	f.pid = cfg.System.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &feedActor{f: f} }))
	return f
}

// Start begins subscribing and reporting uses (once the router works).
func (f *TokenFeed) Start() {
	f.start.Do(func() { go f.loop() })
}

// Stop ends the subscriber loop and the feed actor.
func (f *TokenFeed) Stop() {
	select {
	case <-f.stop:
		return
	default:
		close(f.stop)
	}
	started := true
	f.start.Do(func() { started = false })
	if started {
		<-f.done
	}
	_ = f.cfg.System.Root.StopFuture(f.pid).Wait()
}

// Resync asks for a full snapshot now (on a topology change).
func (f *TokenFeed) Resync() {
	f.resync.Store(true)
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Lookup implements the booking service's token check: the table, or once
// for a token it has not heard of, the queue manager, within ctx. It
// returns ErrUnknownToken for a token the manager does not know, and
// another error (wrapping the router's) when the manager could not answer
// in time: a valid token is never called unknown because the cluster was
// slow.
func (f *TokenFeed) Lookup(ctx context.Context, token string, now time.Time) (TokenCheck, error) {
	if c, ok := f.table.Check(token, now); ok {
		return c, nil
	}
	if token == "" {
		return TokenCheck{}, ErrUnknownToken
	}
	// Asked even when the queue manager runs here: this copy may be stale
	// (its node paused while another took over), and the manager confirms
	// with the journal before it calls a token unknown.
	return f.lookup(ctx, token)
}

// Waiting returns the number of WAIT tokens this node's table shows.
func (f *TokenFeed) Waiting() int { return f.table.Waiting() }

// Active returns the number of ACTIVE tokens this node's table shows.
func (f *TokenFeed) Active() int { return f.table.Active() }

// LagQuantile returns the q-quantile of the recent propagation lags this
// node observed (0 when none).
func (f *TokenFeed) LagQuantile(q float64) (time.Duration, int) {
	f.lagMu.Lock()
	s := append([]time.Duration(nil), f.lagSample...)
	f.lagMu.Unlock()
	if len(s) == 0 {
		return 0, 0
	}
	slices.Sort(s)
	i := int(q * float64(len(s)-1))
	return s[i], len(s)
}

func (f *TokenFeed) observeLag(d time.Duration) {
	f.lag.Observe(d.Seconds())
	f.lagMu.Lock()
	if len(f.lagSample) >= 100_000 {
		f.lagSample = f.lagSample[len(f.lagSample)/2:]
	}
	f.lagSample = append(f.lagSample, d)
	f.lagMu.Unlock()
}

// errLookupAborted is a lookup's answer until its request ends: a lookup
// that never finished says so rather than "found" with a zero check.
var errLookupAborted = errors.New("token lookup: aborted")

// lookup asks the queue manager for a token this node has not heard of,
// once however many checks ask at the same time, and remembers a token it
// does not know for a moment (so made-up tokens do not reach it each time).
//
// The one request runs on its own goroutine, bounded by feedLookupTimeout,
// not by the context of whichever check started it: each check waits for
// it within its own context, and for at most half of the time left before
// its deadline, so a token found late still leaves the call time to act.
func (f *TokenFeed) lookup(ctx context.Context, token string) (TokenCheck, error) {
	now := time.Now()
	f.unknownMu.Lock()
	until, known := f.unknown[token]
	f.unknownMu.Unlock()
	if known && now.Before(until) {
		return TokenCheck{}, ErrUnknownToken
	}
	f.flightMu.Lock()
	c := f.flight[token]
	if c == nil {
		c = &lookupCall{done: make(chan struct{}), err: errLookupAborted}
		f.flight[token] = c
		f.lookups.Inc()
		go f.ask(token, c)
	}
	f.flightMu.Unlock()
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Until(deadline)/2)
		defer cancel()
	}
	select {
	case <-c.done:
		return c.check, c.err
	case <-ctx.Done():
		return TokenCheck{}, fmt.Errorf("token lookup: %w", ctx.Err())
	}
}

// ask is the one request of a lookup: it sets c's answer, then closes
// c.done.
func (f *TokenFeed) ask(token string, c *lookupCall) {
	defer func() {
		f.flightMu.Lock()
		delete(f.flight, token)
		f.flightMu.Unlock()
		close(c.done)
	}()
	asked := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), feedLookupTimeout)
	defer cancel()
	res, err := f.cfg.Router.Request(ctx, "queue", "main", &clusterpb.FeedLookup{Token: digestOf(token)})
	entry, _ := res.(*clusterpb.FeedEntry)
	if err == nil && entry == nil {
		err = fmt.Errorf("unexpected answer %T", res)
	}
	if err != nil {
		// Not known to be unknown: the next check asks again.
		c.err = fmt.Errorf("token lookup: %w", err)
		return
	}
	if !entry.GetFound() {
		f.unknownMu.Lock()
		if len(f.unknown) >= feedUnknownMax {
			f.unknown = map[string]time.Time{}
		}
		f.unknown[token] = asked.Add(feedUnknownTTL)
		f.unknownMu.Unlock()
		c.err = ErrUnknownToken
		return
	}
	t := entry.GetToken()
	st := messages.TokenStatus(t.GetStatus())
	c.check = TokenCheck{TokenID: t.GetTokenId(), UserID: t.GetUserId(), Status: st,
		PaidExpired: st == messages.TokenStatus_TOKEN_EXPIRED && t.GetPaid()}
	c.err = nil
	f.cfg.System.Root.Send(f.pid, entry)
}

// loop subscribes and reports uses until Stop.
func (f *TokenFeed) loop() {
	defer close(f.done)
	// The first subscription asks for its snapshot outright: a restarted
	// node's feed may have the address and id the manager remembers from
	// before, with a snapshot sent moments ago (feedSnapshotGrace).
	f.resync.Store(true)
	report := time.NewTicker(f.cfg.ReportEvery)
	defer report.Stop()
	var lastSub, lastFull, reportAt time.Time
	var reportBackoff time.Duration
	unreachable := false // the last subscription failed
	var pending []touchReport
	for {
		select {
		case <-f.stop:
			return
		case <-report.C:
		case <-f.wake:
		}
		if f.local.Load() != 0 {
			continue // the queue manager runs here and reads this table itself
		}
		now := time.Now()
		// After a failed report the uses wait a backoff (ReportEvery,
		// doubling to feedReportBackoffMax), not rebuilt into a message of
		// every unreported use each tick while the manager is unreachable.
		if !now.Before(reportAt) {
			var ok bool
			if pending, ok = f.reportTouches(pending); ok {
				reportBackoff = 0
			} else {
				reportBackoff = min(max(2*reportBackoff, f.cfg.ReportEvery), feedReportBackoffMax)
				reportAt = now.Add(reportBackoff)
			}
		}
		if now.Sub(lastFull) >= f.cfg.ResyncEvery && !lastFull.IsZero() {
			f.resync.Store(true)
		}
		if f.resync.Load() || now.Sub(lastSub) >= f.cfg.SubscribeEvery {
			lastSub = now
			resync := f.resync.Swap(false)
			snapshot, ok := f.subscribe(resync)
			if snapshot && (resync || lastFull.IsZero()) {
				lastFull = now
			}
			if ok && unreachable {
				// The manager answers again: the uses held back go at the
				// next tick, not after the rest of a backoff of up to 5 s
				// (late uses could let idle expiry take a token in use).
				reportAt, reportBackoff = time.Time{}, 0
			}
			unreachable = !ok
		}
	}
}

type touchReport struct {
	id, atMs int64
}

// reportTouches sends the uses since the last report (and those a failed
// report kept) to the queue manager; it returns what is still unreported,
// and false if the report failed.
func (f *TokenFeed) reportTouches(pending []touchReport) ([]touchReport, bool) {
	f.table.drainTouched(func(e *tokenEntry) {
		pending = append(pending, touchReport{id: e.tokenID, atMs: e.last.Load() / int64(time.Millisecond)})
	})
	if len(pending) == 0 {
		return nil, true
	}
	msg := &clusterpb.FeedTouches{TokenIds: make([]int64, len(pending)), AtMs: make([]int64, len(pending))}
	for i, p := range pending {
		msg.TokenIds[i], msg.AtMs[i] = p.id, p.atMs
	}
	ctx, cancel := context.WithTimeout(context.Background(), feedRequestTimeout)
	defer cancel()
	if _, err := f.cfg.Router.Request(ctx, "queue", "main", msg); err != nil {
		f.cfg.Logger.Debug("token uses not reported; retrying", "tokens", len(pending), "err", err)
		if len(pending) > 1_000_000 {
			pending = pending[len(pending)/2:] // the manager is gone for long: keep the newest
		}
		return pending, false
	}
	return nil, true
}

// subscribe (re)registers this node's feed with the queue manager; it
// reports whether a snapshot is on its way, and whether the manager answered.
func (f *TokenFeed) subscribe(resync bool) (snapshot, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), feedRequestTimeout)
	defer cancel()
	res, err := f.cfg.Router.Request(ctx, "queue", "main", &clusterpb.FeedSubscribe{
		// The system's address, not the PID's: the feed actor was spawned
		// before the remote started, when the address was still "nonhost".
		Address: f.cfg.System.Address(), Id: f.pid.GetId(),
		Epoch: f.epoch.Load(), Seq: f.seq.Load(), Resync: resync,
	})
	sub, _ := res.(*clusterpb.FeedSubscribed)
	if err != nil || sub == nil {
		if resync {
			f.resync.Store(true)
		}
		f.cfg.Logger.Debug("token feed subscription failed", "err", err)
		return false, false
	}
	f.cfg.System.Root.Send(f.pid, sub)
	return sub.GetSnapshot(), true
}

// feedActor applies the pushes to the table, one at a time.
type feedActor struct {
	f *TokenFeed
	// the applied state: epoch and last sequence number
	epoch uint64
	seq   int64
	// a snapshot being received
	staging      []*clusterpb.FeedToken
	stagingEpoch uint64
	stagingSeq   int64
	receiving    bool
	// behind is the manager's seq a heartbeat reported while this node was
	// behind it: still behind it at the next heartbeat means lost pushes.
	behind int64
	// looked-up tokens newer than the applied state: an older update must
	// not take them back
	looked map[string]int64
}

func (a *feedActor) Receive(ctx actor.Context) {
	f := a.f
	switch msg := ctx.Message().(type) {
	case *clusterpb.FeedSnapshot:
		if f.local.Load() != 0 {
			a.forget()
			return
		}
		if msg.GetFirst() {
			a.staging, a.stagingEpoch, a.stagingSeq, a.receiving = nil, msg.GetEpoch(), msg.GetSeq(), true
		}
		if !a.receiving || msg.GetEpoch() != a.stagingEpoch || msg.GetSeq() != a.stagingSeq {
			return // a chunk of a snapshot whose start was missed
		}
		a.staging = append(a.staging, msg.GetTokens()...)
		if msg.GetLast() {
			f.table.replaceAll(a.staging)
			a.set(a.stagingEpoch, a.stagingSeq)
			a.staging, a.receiving, a.looked, a.behind = nil, false, nil, 0
			f.resyncs.Inc()
		}
	case *clusterpb.FeedUpdate:
		if f.local.Load() != 0 {
			a.forget()
			return
		}
		switch {
		case msg.GetEpoch() != a.epoch:
			if !a.receiving || msg.GetEpoch() != a.stagingEpoch {
				f.Resync()
			}
			return
		case msg.GetSeq() <= a.seq:
			return // already applied (or in the snapshot)
		case msg.GetSeq() != a.seq+1:
			f.Resync() // a gap: pushes were lost
			return
		}
		changes := msg.GetChanges()
		for i := 0; i < len(changes); i++ {
			c := changes[i]
			if s, ok := a.looked[c.GetToken()]; ok && msg.GetSeq() <= s {
				continue
			}
			// A fresh secret comes as its old key leaving, then its new
			// key (feedPublish): moved in one step, so that a follower of
			// the old secret always finds the token by id (StateByID).
			if i+1 < len(changes) && isRekey(c, changes[i+1]) {
				if s, ok := a.looked[changes[i+1].GetToken()]; !ok || msg.GetSeq() > s {
					f.table.applyFeedRekey(c, changes[i+1])
					i++
					continue
				}
			}
			f.table.applyFeed(c)
		}
		a.set(a.epoch, msg.GetSeq())
		if len(a.looked) > 0 {
			for tok, s := range a.looked {
				if s <= a.seq {
					delete(a.looked, tok)
				}
			}
		}
		if sent := msg.GetSentUnixNano(); sent > 0 {
			f.observeLag(time.Since(time.Unix(0, sent)))
		}
	case *clusterpb.FeedEntry:
		// A looked-up token: add it if the feed has not brought it yet.
		switch {
		case f.local.Load() != 0:
		case msg.GetEpoch() != a.epoch:
			f.table.insertIfAbsent(msg.GetToken()) // until the snapshot of that epoch
		case msg.GetSeq() <= a.seq:
			// The feed has applied that state already.
		case f.table.insertIfAbsent(msg.GetToken()):
			if a.looked == nil {
				a.looked = map[string]int64{}
			}
			a.looked[msg.GetToken().GetToken()] = msg.GetSeq()
		}
	case *clusterpb.FeedSubscribed:
		if msg.GetEpoch() != a.epoch {
			if !msg.GetSnapshot() {
				f.Resync()
			}
			return
		}
		switch {
		case msg.GetSeq() <= a.seq:
			a.behind = 0
		case a.behind != 0 && a.seq < a.behind:
			a.behind = 0
			f.Resync() // still behind what the last heartbeat saw: pushes were lost
		default:
			a.behind = msg.GetSeq()
		}
	}
}

// set records the applied position.
func (a *feedActor) set(epoch uint64, seq int64) {
	a.epoch, a.seq = epoch, seq
	a.f.epoch.Store(epoch)
	a.f.seq.Store(seq)
}

// forget drops the feed's position while the queue manager runs here: when
// it leaves, the next subscription takes a full snapshot.
func (a *feedActor) forget() {
	a.set(0, 0)
	a.staging, a.receiving, a.looked, a.behind = nil, false, nil, 0
}

// The table operations of the feed. Unlike the queue manager's, these create
// their own entries; they run on the feed actor only.

// entry returns the table's entry for token, or nil.
func (t *TokenTable) entry(token string) *tokenEntry {
	s := t.shard(token)
	s.mu.RLock()
	e := s.m[token]
	s.mu.RUnlock()
	return e
}

// isRekey reports whether gone (a key leaving) and next are a fresh secret
// of one token, as feedPublish sends it.
func isRekey(gone, next *clusterpb.FeedToken) bool {
	return gone.GetStatus() == 0 && next.GetStatus() != 0 && gone.GetTokenId() == next.GetTokenId() &&
		gone.GetToken() != next.GetToken()
}

// applyFeedRekey shows a fresh secret: the entry known by gone's key is
// known by next's instead (keeping its last use), in next's state.
func (t *TokenTable) applyFeedRekey(gone, next *clusterpb.FeedToken) {
	e := t.entry(gone.GetToken())
	if e == nil || e.tokenID != next.GetTokenId() || t.entry(next.GetToken()) != nil {
		t.applyFeed(gone)
		t.applyFeed(next)
		return
	}
	t.rekey(gone.GetToken(), next.GetToken(), e)
	t.publish(next.GetToken(), e, messages.TokenStatus(next.GetStatus()), next.GetPaid())
}

// applyFeed shows one pushed token change.
func (t *TokenTable) applyFeed(c *clusterpb.FeedToken) {
	e := t.entry(c.GetToken())
	if c.GetStatus() == 0 {
		if e != nil {
			t.unpublish(c.GetToken(), e)
		}
		return
	}
	if e == nil {
		e = newTokenEntry(c.GetTokenId(), c.GetUserId(), c.GetLastMs()*int64(time.Millisecond))
	}
	t.publish(c.GetToken(), e, messages.TokenStatus(c.GetStatus()), c.GetPaid())
}

// insertIfAbsent adds a looked-up token unless the table has it already.
func (t *TokenTable) insertIfAbsent(c *clusterpb.FeedToken) bool {
	if c == nil || c.GetStatus() == 0 || t.entry(c.GetToken()) != nil {
		return false
	}
	t.applyFeed(c)
	return true
}

// replaceAll makes the table show exactly tokens (a snapshot). Entries of
// tokens it had already are kept, with their last use.
func (t *TokenTable) replaceAll(tokens []*clusterpb.FeedToken) {
	keep := make(map[string]struct{}, len(tokens))
	for _, c := range tokens {
		if c.GetStatus() == 0 {
			continue
		}
		keep[c.GetToken()] = struct{}{}
		t.applyFeed(c)
	}
	t.retain(func(token string, _ *tokenEntry) bool {
		_, ok := keep[token]
		return ok
	})
}

// snapshotFeed lists the table's tokens as the feed sends them.
func (t *TokenTable) snapshotFeed() []*clusterpb.FeedToken {
	var out []*clusterpb.FeedToken
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.RLock()
		for token, e := range s.m {
			out = append(out, feedToken(token, e))
		}
		s.mu.RUnlock()
	}
	return out
}

func feedToken(token string, e *tokenEntry) *clusterpb.FeedToken {
	return &clusterpb.FeedToken{
		Token: token, TokenId: e.tokenID, UserId: e.userID,
		Status: e.status.Load(), Paid: e.paid.Load(),
		LastMs: e.last.Load() / int64(time.Millisecond),
	}
}
