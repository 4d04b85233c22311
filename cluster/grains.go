package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/cluster/placement"
)

// Grains places every actor as a Proto.Actor cluster grain: a (kind,
// identity) lives on the member that rendezvous hashing (package placement,
// Proto.Actor's disthash with O(1) passivation) picks
// among the members that host the kind, and any member reaches it by kind
// and identity. A single node is a cluster of one.
//
// Placement is not exclusive: during a topology change, or on a member with
// a stale member list, two activations of one grain can run for a while.
// Nothing here relies on single activation; the journal's fence does (a
// stale copy stops at its first write).
//
// Grains passivate without losing mail: a grain is its own manager (it
// grants its own Leave, after everything already in its mailbox), and a
// message that reaches a grain after it stopped is answered as a dead letter
// instead of being dropped, so Request tries again and activates a fresh
// incarnation (see bouncingMailbox).
type Grains struct {
	c       *pcluster.Cluster
	root    *actor.RootContext
	inbox   *inbox // answers to Request
	kinds   map[string]bool
	log     *slog.Logger
	cooling *coolingSet
	owners  atomic.Pointer[ownership] // this node's view of placement
	left    atomic.Pointer[departure] // closed when members leave
	waiters settleWaiters             // WhenSettled calls (fence.go)
}

// departure is closed when members leave the cluster; addrs then holds
// their addresses. A fresh one waits for the next departure.
type departure struct {
	ch    chan struct{}
	addrs map[string]bool
}

// ErrMemberLeft is returned when the member running the actor left the
// cluster (it died or was stopped) while the request waited: it is an
// ErrTimeout — the request may or may not have taken effect — returned at
// once rather than at the deadline.
var ErrMemberLeft = fmt.Errorf("%w: the actor's member left the cluster", ErrTimeout)

// ownership is one member list as rendezvous placement sees it; version
// grows with each topology this node learns.
type ownership struct {
	version uint64
	rdv     *pcluster.Rendezvous
	members []string     // addresses
	settle  *settleState // whether every member reports it (fence.go)
}

// GrainsConfig configures StartGrains.
type GrainsConfig struct {
	// Name is the cluster's name: members of one cluster share it.
	Name string
	// Host and Port are where the remote (gRPC) server listens; port 0
	// picks a free one. AdvertisedAddress (host:port), if set, is what other
	// members dial instead.
	Host              string
	Port              int
	AdvertisedAddress string
	// Provider finds the other members; nil means this node alone.
	Provider pcluster.ClusterProvider
	// ServerOptions and DialOptions configure the remote's gRPC server and
	// its connections to other members (mutual TLS: see TLSOptions).
	ServerOptions []grpc.ServerOption
	DialOptions   []grpc.DialOption
	// Kinds are the grains this member hosts.
	Kinds map[string]Producer
	// Registerer, if set, gets actor_mailbox_depth{kind}.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// StartGrains starts the remote server and joins the cluster. It returns
// once this member has started (Proto.Actor waits about a second for the
// first member list).
func StartGrains(system *actor.ActorSystem, cfg GrainsConfig) (g *Grains, err error) {
	if cfg.Name == "" {
		cfg.Name = "concert"
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Provider == nil {
		cfg.Provider = NewSingleProvider()
	}
	g = &Grains{root: system.Root, inbox: newInbox(system), kinds: map[string]bool{}, log: cfg.Logger, cooling: &coolingSet{m: map[string]*cooling{}}}
	var kinds []*pcluster.Kind
	for kind, produce := range cfg.Kinds {
		depth := &mailboxDepth{}
		if cfg.Registerer != nil {
			cfg.Registerer.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name:        "actor_mailbox_depth",
				Help:        "Messages waiting in the mailboxes of the actors of a kind.",
				ConstLabels: prometheus.Labels{"kind": kind},
			}, func() float64 { return float64(depth.n.Load()) }))
		}
		produce, kind := produce, kind
		props := actor.PropsFromProducer(func() actor.Actor {
			return &grain{produce: produce, kind: kind, cooling: g.cooling, grains: g}
		}, actor.WithMailbox(bouncingMailbox(depth)))
		kinds = append(kinds, pcluster.NewKind(kind, props))
		g.kinds[kind] = true
	}
	ropts := []remote.ConfigOption{}
	if cfg.AdvertisedAddress != "" {
		ropts = append(ropts, remote.WithAdvertisedHost(cfg.AdvertisedAddress))
	}
	if len(cfg.ServerOptions) > 0 {
		ropts = append(ropts, remote.WithServerOptions(cfg.ServerOptions...))
	}
	if len(cfg.DialOptions) > 0 {
		ropts = append(ropts, remote.WithDialOptions(cfg.DialOptions...))
	}
	rcfg := remote.Configure(cfg.Host, cfg.Port, ropts...)
	ccfg := pcluster.Configure(cfg.Name, cfg.Provider, placement.New(), rcfg, pcluster.WithKinds(kinds...))
	g.c = pcluster.New(system, ccfg)
	g.left.Store(&departure{ch: make(chan struct{})})
	system.EventStream.Subscribe(func(ev any) {
		if t, ok := ev.(*pcluster.ClusterTopology); ok {
			if len(t.Left) > 0 {
				d := g.left.Swap(&departure{ch: make(chan struct{})})
				d.addrs = map[string]bool{}
				for _, m := range t.Left {
					d.addrs[m.Address()] = true
				}
				close(d.ch)
			}
			r := pcluster.NewRendezvous()
			r.UpdateMembers(t.Members)
			var v uint64 = 1
			if old := g.owners.Load(); old != nil {
				v = old.version + 1
			}
			addrs := make([]string, len(t.Members))
			for i, m := range t.Members {
				addrs[i] = m.Address()
			}
			o := &ownership{version: v, rdv: r, members: addrs, settle: &settleState{}}
			g.owners.Store(o)
			g.topologyChanged(o, t)
		}
	})
	// Proto.Actor panics when the remote port is taken or the provider fails.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("start cluster member: %v", r)
		}
	}()
	g.c.StartMember()
	return g, nil
}

// Cluster is the underlying Proto.Actor cluster.
func (g *Grains) Cluster() *pcluster.Cluster { return g.c }

// Address is this member's host:port as other members dial it.
func (g *Grains) Address() string { return g.c.ActorSystem.Address() }

// Members returns the addresses of the members this node currently sees
// (from the topology events: MemberList's own accessors read without a lock).
func (g *Grains) Members() []string {
	if o := g.owners.Load(); o != nil {
		return append([]string(nil), o.members...)
	}
	return nil
}

// Leave leaves the cluster gracefully: the other members stop routing here,
// this member's grains stop (their writes finish first) and the remote
// closes. It takes a few seconds (Proto.Actor waits 2 s for ownership to
// move); a cluster of one skips the wait.
func (g *Grains) Leave() {
	if g.alone() {
		g.c.IdentityLookup.Shutdown() // stops the grains, waiting for each
		g.c.Shutdown(false)
		return
	}
	g.c.Shutdown(true)
}

// alone reports whether g is a cluster of one (CLUSTER_PROVIDER=single):
// no other member, so no grain ever runs twice and nothing waits for
// ownership to move.
func (g *Grains) alone() bool {
	_, single := g.c.Config.ClusterProvider.(singleProvider)
	return single
}

// Kill drops out of the cluster at once, as a crash would (for tests).
func (g *Grains) Kill() { g.c.Shutdown(false) }

// Stop is Leave, for the Router's owner.
func (g *Grains) Stop() { g.Leave() }

// Retry pacing for a grain that is moving or restarting: a first retry
// almost at once, then doubling up to grainRetryMax, with jitter.
const (
	grainRetryMin = 500 * time.Microsecond
	grainRetryMax = 100 * time.Millisecond
)

// Request implements Router. It looks the grain up (activating it if
// needed), asks it with what is left of ctx's deadline, and tries again when
// the grain turned out to be gone (a dead letter: it passivated, moved or
// its member left) or no member hosts the kind yet — never after a timeout,
// since the first try may still take effect.
func (g *Grains) Request(ctx context.Context, kind, identity string, msg proto.Message) (proto.Message, error) {
	if !g.kinds[kind] {
		return nil, fmt.Errorf("request %s/%s: %w", kind, identity, ErrUnknownKind)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultRequestTimeout)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	wait := grainRetryMin
	for {
		if err := ctx.Err(); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return nil, fmt.Errorf("request %s/%s: %w", kind, identity, ErrTimeout)
			}
			return nil, fmt.Errorf("request %s/%s: %w", kind, identity, err)
		}
		if time.Until(deadline) <= 0 {
			return nil, fmt.Errorf("request %s/%s: %w", kind, identity, ErrTimeout)
		}
		pid := g.pid(ctx, identity, kind, deadline)
		if pid != nil {
			res, err, gone := g.await(ctx, g.inbox.send(g.root, pid, msg), pid.GetAddress())
			if gone {
				g.c.PidCache.RemoveByValue(identity, kind, pid)
				return nil, fmt.Errorf("request %s/%s: %w", kind, identity, ErrMemberLeft)
			}
			if !errors.Is(err, actor.ErrDeadLetter) {
				return replyError(kind, identity, res, err)
			}
			g.c.PidCache.RemoveByValue(identity, kind, pid)
		}
		// Gone or not placeable yet: wait a little and look it up again.
		d := wait/2 + rand.N(wait/2+1)
		if time.Until(deadline) < d {
			d = max(time.Until(deadline), 0)
		}
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
		wait = min(2*wait, grainRetryMax)
	}
}

// RequestAsync implements AsyncRequester. A grain of this member whose PID
// is cached is asked without a goroutine waiting; anything else — a lookup,
// an actor on another member (whose departure Request watches for), or a
// dead letter, which means the message was not delivered — goes the whole
// way of Request on a goroutine, within what is left of timeout.
func (g *Grains) RequestAsync(kind, identity string, msg proto.Message, timeout time.Duration, then func(proto.Message, error)) {
	deadline := time.Now().Add(timeout)
	inBackground := func() { RequestInBackground(g, kind, identity, msg, time.Until(deadline), then) }
	pid, ok := g.c.PidCache.Get(identity, kind)
	if !g.kinds[kind] || !ok || pid.GetAddress() != g.c.ActorSystem.Address() {
		inBackground()
		return
	}
	g.root.RequestWithCustomSender(pid, msg, g.inbox.async(timeout, func(res any, err error) {
		if errors.Is(err, actor.ErrDeadLetter) {
			g.c.PidCache.RemoveByValue(identity, kind, pid)
			inBackground()
			return
		}
		then(replyError(kind, identity, res, err))
	}))
}

// await waits for a request's answer until ctx ends; for an actor on
// another member it gives up (gone) as soon as that member leaves the
// cluster, instead of waiting out the deadline for an answer that cannot
// come.
func (g *Grains) await(ctx context.Context, c *call, addr string) (res any, err error, gone bool) {
	if addr == g.c.ActorSystem.Address() {
		res, err = c.wait(ctx)
		return res, err, false
	}
	dep := g.left.Load()
	for {
		select {
		case r := <-c.reply:
			res, err = result(r)
			return res, err, false
		case <-ctx.Done():
			res, err = c.end(expiry(ctx))
			return res, err, false
		case <-dep.ch:
			if dep.addrs[addr] {
				res, err = c.end(errMemberGone)
				return res, err, errors.Is(err, errMemberGone)
			}
			dep = g.left.Load()
		}
	}
}

// errMemberGone ends a call whose actor's member left (await).
var errMemberGone = errors.New("cluster: the actor's member left")

// pid returns the grain's cached PID or asks its owner's placement actor,
// giving up at the deadline (disthash waits up to 5 s for an owner that does
// not answer, e.g. a member that just died).
func (g *Grains) pid(ctx context.Context, identity, kind string, deadline time.Time) *actor.PID {
	if pid, ok := g.c.PidCache.Get(identity, kind); ok {
		return pid
	}
	got := make(chan *actor.PID, 1)
	go func() { got <- g.c.Get(identity, kind) }()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case pid := <-got:
		if pid != nil {
			g.c.PidCache.Set(identity, kind, pid)
		}
		return pid
	case <-ctx.Done():
		return nil
	case <-timer.C:
		return nil
	}
}

// Send implements Router. A plain send to a cached PID is lost when the
// grain has just stopped, so it is a Request in the background, with the
// default timeout, whose answer is dropped.
func (g *Grains) Send(kind, identity string, msg proto.Message) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), DefaultRequestTimeout)
		defer cancel()
		if _, err := g.Request(ctx, kind, identity, msg); err != nil && !isRejection(err) {
			g.log.Debug("send failed", "actor", kind+"/"+identity, "err", err)
		}
	}()
}

func isRejection(err error) bool {
	var r interface{ GetCode() string }
	return errors.As(err, &r)
}

// grain hosts one activation of a kind's actor. It builds the actor from
// the cluster identity at start, before the actor sees Started, so the
// actor's journal id is "kind/identity" whatever the activation's PID.
//
// It is the actor's own manager (ManagerOf returns the grain's PID): no one
// forwards to a grain, callers send straight to it, so granting Leave after
// the messages already queued is all a manager could do. A stop then bounces
// the late ones (bouncingMailbox).
type grain struct {
	produce  Producer
	kind     string
	identity string
	inner    actor.Actor
	cooling  *coolingSet
	key      string
	grains   *Grains
	checked  uint64 // the ownership version this activation was last found the owner in
}

// owned reports whether this node, as it now sees the members, is where
// the grain belongs. An activation made on a node that no longer owns it —
// activated before the member list settled, or asked by a member with
// another view — stops instead of answering from state that the owner may
// have moved past (Proto.Actor poisons moved grains on each topology change
// too; this also covers the copies it misses).
func (g *grain) owned(self string) bool {
	o := g.grains.owners.Load()
	if o == nil || o.version == g.checked {
		return true
	}
	owner := o.rdv.GetByClusterIdentity(&pcluster.ClusterIdentity{Identity: g.identity, Kind: g.kind})
	if owner == "" || owner == self {
		g.checked = o.version
		return true
	}
	return false
}

func (g *grain) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		identity := ""
		if ci := pcluster.GetClusterIdentity(ctx); ci != nil {
			identity = ci.Identity
		}
		g.key, g.identity = g.kind+"/"+identity, identity
		var place Placement = grainPlacement{g: g, self: ctx.ActorSystem().Address()}
		if g.grains.alone() {
			place = nil // a cluster of one never runs a second copy: no fence
		}
		ctx.Set(&managerExtension{pid: ctx.Self(), placement: place})
		if g.cooling.active(g.key) {
			// Its recovery failed a moment ago: do not hit the store again
			// at once; answer STORE_UNAVAILABLE until the grain stops.
			g.inner = coolingActor{identity: g.key}
			ctx.Send(ctx.Self(), &LeaveGranted{})
			return
		}
		g.inner = g.produce(identity)
	case *pcluster.ClusterInit:
		return
	case *Leave:
		if msg.RecoveryFailed {
			// Stay broken (answering STORE_UNAVAILABLE) for a jittered
			// backoff, so a store outage does not turn every request into a
			// recovery attempt; then stop and let the next request retry.
			d := g.cooling.coolDown(g.key)
			self, root := ctx.Self(), ctx.ActorSystem().Root
			time.AfterFunc(d, func() { root.Send(self, &LeaveGranted{}) })
			return
		}
		g.cooling.clear(g.key)
		ctx.Send(ctx.Self(), &LeaveGranted{})
		return
	case *Stay:
		return
	case *LeaveGranted:
		if _, ok := g.inner.(coolingActor); ok {
			ctx.Stop(ctx.Self())
			return
		}
	case proto.Message:
		if !g.owned(ctx.ActorSystem().Address()) {
			g.grains.log.Debug("activation on a node that no longer owns it: stopping", "actor", g.key)
			if s := ctx.Sender(); awaitsAnswer(s) {
				ctx.Send(s, &actor.DeadLetterResponse{Target: ctx.Self()})
			}
			ctx.Stop(ctx.Self())
			return
		}
	}
	if g.inner != nil {
		g.inner.Receive(ctx)
	}
}

// coolingActor answers every request of a grain whose recovery just failed.
type coolingActor struct{ identity string }

func (c coolingActor) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(proto.Message); ok && ctx.Sender() != nil {
		ctx.Respond(unavailable(c.identity))
	}
}

// coolingSet remembers, per node, the identities whose recovery failed
// recently and when they may be activated again.
type coolingSet struct {
	mu sync.Mutex
	m  map[string]*cooling
}

func (s *coolingSet) active(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.m[key]
	return c != nil && time.Now().Before(c.until)
}

func (s *coolingSet) coolDown(key string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.m[key]
	if c == nil {
		c = &cooling{}
		s.m[key] = c
	}
	c.failures++
	d := min(recoveryBackoffMin<<min(c.failures-1, 16), recoveryBackoffMax)
	d = d/2 + rand.N(d/2+1)
	c.until = time.Now().Add(d)
	return d
}

func (s *coolingSet) clear(key string) {
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
}

// bouncingMailbox is Proto.Actor's unbounded mailbox, except that a user
// message that reaches the actor after it stopped — queued behind the stop,
// or sent through a PID cached before it — is answered as a dead letter
// (when it is a request) instead of being dropped silently, so the caller
// retries at once rather than waiting out its deadline.
func bouncingMailbox(stats ...actor.MailboxMiddleware) actor.MailboxProducer {
	inner := actor.Unbounded(stats...)
	return func() actor.Mailbox { return &bouncer{Mailbox: inner()} }
}

type bouncer struct {
	actor.Mailbox
	invoker actor.MessageInvoker
	stopped bool // only touched by the mailbox's one running goroutine
}

type systemContext interface {
	ActorSystem() *actor.ActorSystem
	Self() *actor.PID
}

func (b *bouncer) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	b.invoker = invoker
	b.Mailbox.RegisterHandlers(b, dispatcher)
}

func (b *bouncer) InvokeSystemMessage(msg any) {
	b.invoker.InvokeSystemMessage(msg)
	if _, ok := msg.(*actor.Stop); ok {
		b.stopped = true
	}
}

func (b *bouncer) InvokeUserMessage(msg any) {
	if !b.stopped {
		b.invoker.InvokeUserMessage(msg)
		return
	}
	sender := actor.UnwrapEnvelopeSender(msg)
	if !awaitsAnswer(sender) {
		return
	}
	if sc, ok := b.invoker.(systemContext); ok {
		sc.ActorSystem().Root.Send(sender, &actor.DeadLetterResponse{Target: sc.Self()})
	}
}

func (b *bouncer) EscalateFailure(reason, msg any) { b.invoker.EscalateFailure(reason, msg) }
