package actors

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/actors/actortest"
	"github.com/concert/ticketing/cluster"
	"github.com/concert/ticketing/cluster/clusterpb"
	"github.com/concert/ticketing/messages"
)

// feedRig is a queue manager with its own table (the "owner node") and a
// second table fed through the token feed (another node), in one process.
type feedRig struct {
	system *actor.ActorSystem
	local  *cluster.Local
	owner  *TokenTable
	remote *TokenTable
	feed   *TokenFeed // the other node's
	router *countingRouter
}

// countingRouter counts the requests of each message type, and fails the
// use reports while failTouches is set.
type countingRouter struct {
	cluster.Router
	lookups     atomic.Int64
	touches     atomic.Int64
	failTouches atomic.Bool
	unreachable atomic.Bool // subscriptions fail too
	// lookupGate, while set, holds every lookup until it is closed (a
	// manager that does not answer).
	lookupGate atomic.Pointer[chan struct{}]
}

func (r *countingRouter) Request(ctx context.Context, kind, identity string, msg proto.Message) (proto.Message, error) {
	switch msg.(type) {
	case *clusterpb.FeedLookup:
		r.lookups.Add(1)
		if gate := r.lookupGate.Load(); gate != nil {
			select {
			case <-*gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	case *clusterpb.FeedTouches:
		r.touches.Add(1)
		if r.failTouches.Load() || r.unreachable.Load() {
			return nil, fmt.Errorf("the queue manager is unreachable")
		}
	case *clusterpb.FeedSubscribe:
		if r.unreachable.Load() {
			return nil, fmt.Errorf("the queue manager is unreachable")
		}
	}
	return r.Router.Request(ctx, kind, identity, msg)
}

func newFeedRig(t *testing.T, start bool) *feedRig {
	t.Helper()
	r := &feedRig{system: actor.NewActorSystem(), owner: NewTokenTable(), remote: NewTokenTable()}
	ownFeed := NewTokenFeed(TokenFeedConfig{Table: r.owner, System: r.system})
	r.local = cluster.NewLocal(r.system, map[string]cluster.Producer{"queue": NewQueueProducer(QueueConfig{
		Journal: actortest.NewMemJournal(), Tokens: r.owner, Feed: ownFeed, ActiveTokens: 2,
		TokenIdleTTL: time.Hour, WaitIdleTTL: time.Hour, TickInterval: 20 * time.Millisecond,
	})})
	ownFeed.cfg.Router = r.local
	r.router = &countingRouter{Router: r.local}
	r.feed = NewTokenFeed(TokenFeedConfig{Table: r.remote, Router: r.router, System: r.system,
		ReportEvery: 10 * time.Millisecond, SubscribeEvery: 50 * time.Millisecond})
	if start {
		r.feed.Start()
	}
	t.Cleanup(func() {
		r.feed.Stop()
		ownFeed.Stop()
		r.local.Stop()
	})
	return r
}

func (r *feedRig) issue(t *testing.T, user int64) *messages.Token {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := r.local.Request(ctx, "queue", "main", &messages.IssueToken{UserId: user})
	if err != nil {
		t.Fatal(err)
	}
	return res.(*messages.TokenResult).GetToken()
}

// sameView reports whether the remote table shows what the owner's shows.
func (r *feedRig) sameView() bool {
	a, b := r.owner.snapshotFeed(), r.remote.snapshotFeed()
	if len(a) != len(b) {
		return false
	}
	byToken := map[string]*clusterpb.FeedToken{}
	for _, x := range b {
		byToken[x.GetToken()] = x
	}
	for _, x := range a {
		y := byToken[x.GetToken()]
		if y == nil || y.GetStatus() != x.GetStatus() || y.GetPaid() != x.GetPaid() || y.GetTokenId() != x.GetTokenId() {
			return false
		}
	}
	return true
}

func TestTokenFeedFollowsTheQueueManager(t *testing.T) {
	r := newFeedRig(t, true)
	var toks []*messages.Token
	for u := int64(1); u <= 5; u++ {
		toks = append(toks, r.issue(t, u))
	}
	actortest.Eventually(t, 5*time.Second, r.sameView, "the other node's table shows the owner's")
	if r.remote.Active() != 2 || r.remote.Waiting() != 3 {
		t.Fatalf("remote shows %d active, %d waiting; want 2 and 3", r.remote.Active(), r.remote.Waiting())
	}
	// An expiry (paid) admits the head of the line; both reach the other node.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.local.Request(ctx, "queue", "main", &messages.ExpireToken{Token: toks[0].GetToken(), Reason: ExpiredReasonPaid}); err != nil {
		t.Fatal(err)
	}
	actortest.Eventually(t, 5*time.Second, func() bool {
		c, ok := r.remote.Check(toks[0].GetToken(), time.Now())
		n, ok2 := r.remote.Check(toks[2].GetToken(), time.Now())
		return ok && c.PaidExpired && ok2 && n.Status == messages.TokenStatus_TOKEN_ACTIVE
	}, "the expiry and the admission on the other node")
	if d, n := r.feed.LagQuantile(0.99); n > 0 {
		t.Logf("in-process propagation p99 %s over %d updates", d, n)
	}

	// A gap (an update lost on the way) makes the node take a snapshot.
	before := r.feed.seq.Load()
	r.system.Root.Send(r.feed.pid, &clusterpb.FeedUpdate{Epoch: r.feed.epoch.Load(), Seq: before + 5,
		Changes: []*clusterpb.FeedToken{{Token: digestOf("bogus"), TokenId: 999, UserId: 999, Status: int32(messages.TokenStatus_TOKEN_ACTIVE)}}})
	r.issue(t, 6)
	actortest.Eventually(t, 5*time.Second, func() bool {
		_, bogus := r.remote.Check("bogus", time.Now())
		return !bogus && r.sameView()
	}, "a snapshot after the gap")
}

// TestTokenFeedReportsUses: a use seen only on the other node reaches the
// queue manager's token (which idle expiry reads).
func TestTokenFeedReportsUses(t *testing.T) {
	r := newFeedRig(t, true)
	tok := r.issue(t, 1)
	actortest.Eventually(t, 5*time.Second, r.sameView, "the token on the other node")
	entry := r.owner.entry(digestOf(tok.GetToken()))
	before := entry.last.Load()
	used := time.Now().Add(time.Second) // later than anything the owner saw
	if _, ok := r.remote.Check(tok.GetToken(), used); !ok {
		t.Fatal("token unknown on the other node")
	}
	actortest.Eventually(t, 5*time.Second, func() bool {
		return entry.last.Load() >= used.UnixMilli()*int64(time.Millisecond) && entry.last.Load() > before
	}, "the use reported to the queue manager")
}

// TestTokenFeedLooksUpOnce: a node that has not heard of a token asks the
// queue manager once; an unknown token is remembered as unknown for a
// moment.
func TestTokenFeedLooksUpOnce(t *testing.T) {
	r := newFeedRig(t, false) // never subscribes: it hears of nothing
	tok := r.issue(t, 1)
	for i := range 3 {
		c, err := r.feed.Lookup(context.Background(), tok.GetToken(), time.Now())
		if err != nil || c.Status != messages.TokenStatus_TOKEN_ACTIVE {
			t.Fatalf("check of a token issued elsewhere: %+v %v", c, err)
		}
		if i == 0 {
			// The looked-up entry reaches the table through the feed's
			// actor, a moment after the check returned.
			actortest.Eventually(t, 5*time.Second, func() bool { return r.remote.entry(digestOf(tok.GetToken())) != nil },
				"the looked-up entry to land in the table")
		}
	}
	for range 3 {
		if _, err := r.feed.Lookup(context.Background(), "never-issued", time.Now()); !errors.Is(err, ErrUnknownToken) {
			t.Fatalf("a made-up token: %v, want ErrUnknownToken", err)
		}
	}
	if n := r.router.lookups.Load(); n != 2 {
		t.Fatalf("%d lookups, want 2 (one per token)", n)
	}
}

// TestTokenFeedSlowLookupIsNotUnknown: while the queue manager does not
// answer a lookup (busy, or moving), checks of the token are one request,
// each check gives up within its own deadline whoever started the request,
// and none calls the token unknown (which the API answers 401, telling a
// fan with a valid token to start over) nor remembers it as unknown; the
// check with time to wait gets the answer once the manager gives it.
func TestTokenFeedSlowLookupIsNotUnknown(t *testing.T) {
	r := newFeedRig(t, false) // never subscribes: every check looks up
	tok := r.issue(t, 1)
	gate := make(chan struct{})
	r.router.lookupGate.Store(&gate)
	patient := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, err := r.feed.Lookup(ctx, tok.GetToken(), time.Now())
		if err == nil && c.UserID != 1 {
			err = fmt.Errorf("found %+v, want user 1", c)
		}
		patient <- err
	}()
	actortest.Eventually(t, 5*time.Second, func() bool { return r.router.lookups.Load() == 1 }, "the lookup to be asked")
	const hurried = 8
	errs := make(chan error, hurried)
	for range hurried {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			_, err := r.feed.Lookup(ctx, tok.GetToken(), time.Now())
			errs <- err
		}()
	}
	for range hurried {
		select {
		case err := <-errs:
			if err == nil || errors.Is(err, ErrUnknownToken) {
				t.Fatalf("a check with no answer in time: %v, want an error other than ErrUnknownToken", err)
			}
		case <-time.After(3 * time.Second): // under the lookup's own 5s bound
			t.Fatal("a check waited past its own deadline for a lookup another check started")
		}
	}
	if n := r.router.lookups.Load(); n != 1 {
		t.Fatalf("%d lookups while the manager was silent, want 1", n)
	}
	close(gate)
	if err := <-patient; err != nil {
		t.Fatalf("the check with time to wait: %v", err)
	}
	c, err := r.feed.Lookup(context.Background(), tok.GetToken(), time.Now())
	if err != nil || c.UserID != 1 {
		t.Fatalf("a check once the manager answered: %+v %v", c, err)
	}
}

// BenchmarkTokenFeedCheck is BenchmarkTokenTableCheck through the feed's
// Lookup (what the booking service calls on a cluster node): a hit costs no
// more than the table.
func BenchmarkTokenFeedCheck(b *testing.B) {
	tt := NewTokenTable()
	f := &TokenFeed{table: tt}
	const n = 100_000
	tokens := make([]string, n)
	now := time.Now()
	for i := range tokens {
		tokens[i] = fmt.Sprintf("tok-%032x", i*2654435761)
		tt.publish(tokens[i], newTokenEntry(int64(i), int64(i), now.UnixNano()), messages.TokenStatus_TOKEN_ACTIVE, false)
	}
	var seed atomic.Int64
	ctx := context.Background()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seed.Add(7919))
		for pb.Next() {
			i += 10
			if _, err := f.Lookup(ctx, tokens[i%n], time.Now()); err != nil {
				b.Error("token not found")
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
}

// TestTokenFeedRekeyFollowsTheToken: a fresh secret for a live token (its
// user asked for it again) reaches the other node as one move of the same
// entry, keeping its last use, and on both nodes the token stays findable
// by id all along (StateByID: what a stream of the old secret reads).
func TestTokenFeedRekeyFollowsTheToken(t *testing.T) {
	r := newFeedRig(t, true)
	for u := int64(1); u <= 3; u++ {
		r.issue(t, u)
	}
	old := r.issue(t, 4) // WAIT, second in line
	actortest.Eventually(t, 5*time.Second, r.sameView, "the other node's table shows the owner's")
	before := r.remote.entry(digestOf(old.GetToken()))
	if before == nil {
		t.Fatal("the other node does not show the token")
	}
	stop := make(chan struct{})
	lost := make(chan string, 1)
	go func() { // a follower of the old secret, on the other node
		for {
			select {
			case <-stop:
				close(lost)
				return
			default:
			}
			if _, ok := r.remote.State(old.GetToken()); ok {
				continue
			}
			if st, ok := r.remote.StateByID(old.GetId()); !ok || st.Status != messages.TokenStatus_TOKEN_WAIT {
				lost <- fmt.Sprintf("%+v %v", st, ok)
				close(lost)
				return
			}
		}
	}()
	fresh := r.issue(t, 4)
	if fresh.GetId() != old.GetId() || fresh.GetToken() == old.GetToken() {
		t.Fatalf("re-request: %v, want token %d with a fresh secret", fresh, old.GetId())
	}
	actortest.Eventually(t, 5*time.Second, func() bool {
		_, oldOK := r.remote.State(old.GetToken())
		st, ok := r.remote.State(fresh.GetToken())
		return !oldOK && ok && st.Position == 2
	}, "the fresh secret on the other node")
	close(stop)
	if msg, ok := <-lost; ok {
		t.Fatalf("the token could not be found by id for a moment: %s", msg)
	}
	if r.remote.entry(digestOf(fresh.GetToken())) != before {
		t.Fatal("the other node made a new entry: the token's last use there is lost")
	}
	for _, table := range []*TokenTable{r.owner, r.remote} {
		if st, ok := table.StateByID(old.GetId()); !ok || st.Status != messages.TokenStatus_TOKEN_WAIT || st.Position != 2 {
			t.Fatalf("by id: %+v %v, want WAIT second in line", st, ok)
		}
	}
	if _, ok := r.remote.StateByID(999); ok {
		t.Fatal("an unknown id was found")
	}
}

// snapshotProbe counts the token feed snapshots sent to it.
type snapshotProbe struct{ started atomic.Int64 }

func (p *snapshotProbe) Receive(ctx actor.Context) {
	if s, ok := ctx.Message().(*clusterpb.FeedSnapshot); ok && s.GetFirst() {
		p.started.Add(1)
	}
}

// TestTokenFeedSendsOneSnapshotWhileItIsApplied: a node that keeps
// subscribing with the older epoch while it applies the snapshot it was
// sent (a million tokens take longer than the second between
// subscriptions) is not sent another full one each time — O(tokens) on both
// sides — unless it asks for one (Resync).
func TestTokenFeedSendsOneSnapshotWhileItIsApplied(t *testing.T) {
	r := newFeedRig(t, false)
	for u := int64(1); u <= 5; u++ {
		r.issue(t, u)
	}
	probe := &snapshotProbe{}
	pid := r.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return probe }))
	defer r.system.Root.Stop(pid)
	subscribe := func(resync bool) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := r.local.Request(ctx, "queue", "main", &clusterpb.FeedSubscribe{
			Address: r.system.Address(), Id: pid.GetId(), Epoch: 0, Resync: resync})
		if err != nil {
			t.Fatal(err)
		}
		if !res.(*clusterpb.FeedSubscribed).GetSnapshot() {
			t.Fatal("a node of another epoch was not told a snapshot is its way")
		}
	}
	for range 10 {
		subscribe(false)
	}
	actortest.Eventually(t, 5*time.Second, func() bool { return probe.started.Load() >= 1 }, "the first snapshot")
	subscribe(true)
	actortest.Eventually(t, 5*time.Second, func() bool { return probe.started.Load() >= 2 }, "the snapshot asked for")
	if n := probe.started.Load(); n != 2 {
		t.Fatalf("%d snapshots sent for 10 subscriptions of one epoch and one resync; want 2", n)
	}
}

// TestTokenFeedBacksOffFailedReports: while the queue manager cannot be
// reached, a node does not rebuild and send a report of every unreported
// use at each tick; it backs off, and reports them once it can.
func TestTokenFeedBacksOffFailedReports(t *testing.T) {
	r := newFeedRig(t, true) // reports every 10 ms
	tok := r.issue(t, 1)
	actortest.Eventually(t, 5*time.Second, r.sameView, "the token on the other node")
	r.router.failTouches.Store(true)
	before, start := r.router.touches.Load(), time.Now()
	for time.Since(start) < time.Second {
		r.remote.Check(tok.GetToken(), time.Now()) // a use to report
		time.Sleep(5 * time.Millisecond)
	}
	// 10, 20, 40 … ms apart: about log2(elapsed/10 ms) tries, not one per tick.
	tries, ticks := r.router.touches.Load()-before, time.Since(start)/(10*time.Millisecond)
	if limit := int64(12 + time.Since(start)/feedReportBackoffMax); tries > limit {
		t.Fatalf("%d failed reports in %d ticks; want at most %d (a backoff)", tries, ticks, limit)
	}
	entry := r.owner.entry(digestOf(tok.GetToken()))
	used := time.Now().Add(time.Second)
	r.remote.Check(tok.GetToken(), used)
	r.router.failTouches.Store(false)
	actortest.Eventually(t, 10*time.Second, func() bool {
		return entry.last.Load() >= used.UnixMilli()*int64(time.Millisecond)
	}, "the uses reported once the manager is back")
}

// TestTokenFeedReportsAtOnceWhenTheManagerIsBack: once a node reaches the
// queue manager again (a subscription succeeds), the uses it held back are
// reported at the next tick, not after what is left of a backoff that grew
// while the manager was unreachable.
func TestTokenFeedReportsAtOnceWhenTheManagerIsBack(t *testing.T) {
	r := newFeedRig(t, true) // reports every 10 ms, subscribes every 50 ms
	tok := r.issue(t, 1)
	actortest.Eventually(t, 5*time.Second, r.sameView, "the token on the other node")
	r.router.unreachable.Store(true)
	// Failed reports 10, 20 … 1,280 ms apart: the last at about 2.55 s, the
	// next due about 2.56 s after it.
	start := time.Now()
	for time.Since(start) < 2600*time.Millisecond {
		r.remote.Check(tok.GetToken(), time.Now())
		time.Sleep(5 * time.Millisecond)
	}
	entry := r.owner.entry(digestOf(tok.GetToken()))
	used := time.Now().Add(time.Second)
	r.remote.Check(tok.GetToken(), used)
	r.router.unreachable.Store(false)
	back := time.Now()
	actortest.Eventually(t, 10*time.Second, func() bool {
		return entry.last.Load() >= used.UnixMilli()*int64(time.Millisecond)
	}, "the uses reported once the manager is back")
	if d := time.Since(back); d > 1500*time.Millisecond {
		t.Fatalf("uses reported %s after the manager was back; want the next tick after a subscription", d)
	}
}
