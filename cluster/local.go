package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/ctxext"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/messages"
)

// Local places every actor on this node: one manager actor per kind owns the
// children of that kind, spawns them on first use and forwards messages to
// them. Passivation goes through the manager (see Leave), so no message is
// ever forwarded to a child that is about to stop: Proto.Actor silently drops
// mail queued behind a stop.
type Local struct {
	root     *actor.RootContext
	inbox    *inbox // answers to Request
	managers map[string]*actor.PID
	routes   map[string]*routes // per kind: direct sends to live children
}

// LocalOption configures NewLocal.
type LocalOption func(*localOptions)

type localOptions struct {
	registerer prometheus.Registerer
	placement  func(kind, identity string) Placement // WithPlacement
}

// WithMetrics registers actor_mailbox_depth{kind}: messages queued in the
// mailboxes of all actors of a kind, managers included.
func WithMetrics(r prometheus.Registerer) LocalOption {
	return func(o *localOptions) { o.registerer = r }
}

// NewLocal starts one manager per kind. The map is read-only afterwards.
func NewLocal(system *actor.ActorSystem, kinds map[string]Producer, opts ...LocalOption) *Local {
	var o localOptions
	for _, opt := range opts {
		opt(&o)
	}
	l := &Local{root: system.Root, inbox: newInbox(system),
		managers: make(map[string]*actor.PID, len(kinds)), routes: make(map[string]*routes, len(kinds))}
	for kind, produce := range kinds {
		depth := &mailboxDepth{}
		if o.registerer != nil {
			o.registerer.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name:        "actor_mailbox_depth",
				Help:        "Messages waiting in the mailboxes of the actors of a kind.",
				ConstLabels: prometheus.Labels{"kind": kind},
			}, func() float64 { return float64(depth.n.Load()) }))
		}
		mailbox := actor.WithMailbox(actor.Unbounded(depth))
		produce, kind, routes := produce, kind, newRoutes()
		props := actor.PropsFromProducer(func() actor.Actor {
			return &manager{produce: produce, kind: kind, place: o.placement, children: map[string]*child{}, mailbox: mailbox, routes: routes}
		}, mailbox)
		l.routes[kind] = routes
		l.managers[kind] = system.Root.Spawn(props)
	}
	return l
}

// mailboxDepth counts messages posted but not yet received.
type mailboxDepth struct{ n atomic.Int64 }

func (d *mailboxDepth) MailboxStarted()     {}
func (d *mailboxDepth) MessagePosted(any)   { d.n.Add(1) }
func (d *mailboxDepth) MessageReceived(any) { d.n.Add(-1) }
func (d *mailboxDepth) MailboxEmpty()       {}

// Request implements Router.
func (l *Local) Request(ctx context.Context, kind, identity string, msg proto.Message) (proto.Message, error) {
	pid, ok := l.managers[kind]
	if !ok {
		return nil, fmt.Errorf("request %s/%s: %w", kind, identity, ErrUnknownKind)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("request %s/%s: %w", kind, identity, err)
	}
	if msg == nil {
		return nil, fmt.Errorf("request %s/%s: %w", kind, identity, errNoMessage)
	}
	routes := l.routes[kind]
	c := l.inbox.open()
	if routes.send(l.root, identity, msg, c.PID) {
		res, err := c.wait(ctx)
		if !errors.Is(err, actor.ErrDeadLetter) {
			return replyError(kind, identity, res, err)
		}
		// The child stopped without leaving (stopped from outside) before
		// the manager saw it: the message was not delivered, so the
		// manager may give it to a successor.
		routes.count(identity)
		c = l.inbox.open()
	}
	l.root.RequestWithCustomSender(pid, &deliver{identity: identity, msg: msg, counted: true}, c.PID)
	res, err := c.wait(ctx)
	return replyError(kind, identity, res, err)
}

// RequestAsync implements AsyncRequester: Request without a waiting
// goroutine. A dead letter met on the direct route (a child stopped from
// outside) is retried once through the manager, as Request does, in what
// is left of timeout.
func (l *Local) RequestAsync(kind, identity string, msg proto.Message, timeout time.Duration, then func(proto.Message, error)) {
	manager, ok := l.managers[kind]
	if !ok || msg == nil {
		err := ErrUnknownKind
		if ok {
			err = errNoMessage
		}
		then(nil, fmt.Errorf("request %s/%s: %w", kind, identity, err))
		return
	}
	routes, deadline := l.routes[kind], time.Now().Add(timeout)
	answer := func(res any, err error) { then(replyError(kind, identity, res, err)) }
	viaManager := func(sender *actor.PID) {
		l.root.RequestWithCustomSender(manager, &deliver{identity: identity, msg: msg, counted: true}, sender)
	}
	retry := func() {
		routes.count(identity)
		viaManager(l.inbox.async(time.Until(deadline), answer))
	}
	// A dead letter is answered on the sending goroutine, inside
	// routes.send and under its lock: then it is only noted, and retried
	// once send has returned — still before this call returns, so the
	// caller's next message cannot overtake the retry.
	var state atomic.Int32 // sending → sent, or sending → deadLetter
	const sending, sent, deadLetter = 0, 1, 2
	sender := l.inbox.async(timeout, func(res any, err error) {
		if errors.Is(err, actor.ErrDeadLetter) {
			if state.CompareAndSwap(sending, deadLetter) {
				return
			}
			retry()
			return
		}
		answer(res, err)
	})
	direct := routes.send(l.root, identity, msg, sender)
	if !state.CompareAndSwap(sending, sent) {
		retry()
		return
	}
	if !direct {
		// A dead letter from here on (the manager stopped) is retried,
		// and the retry's own is answered: never swallowed.
		viaManager(sender)
	}
}

// Send implements Router: fire and forget. It always goes through the
// manager: a direct message to a child that has just stopped (from
// outside) would be lost with nobody to retry it, while the manager sees
// the Terminated first. Counted, so a later Request does not overtake it.
func (l *Local) Send(kind, identity string, msg proto.Message) {
	if pid, ok := l.managers[kind]; ok && msg != nil {
		l.routes[kind].count(identity)
		l.root.Send(pid, &deliver{identity: identity, msg: msg, counted: true})
	}
}

// Stop stops every actor of every kind, waiting for each to finish.
func (l *Local) Stop() {
	for _, pid := range l.managers {
		_ = l.root.StopFuture(pid).Wait()
	}
}

// errNoMessage refuses a nil message: Proto.Actor would queue it as is,
// and a mailbox that pops a nil takes itself for empty and spins.
var errNoMessage = errors.New("no message")

// deliver asks a manager to hand msg to the child named identity. counted:
// sent by Request or Send, which counted it in the kind's routes.
type deliver struct {
	identity string
	msg      any
	counted  bool
}

// managerExtensionID keys the context extension that tells a placed actor
// its manager. Assigned once at start-up, read-only afterwards.
var managerExtensionID = ctxext.NextContextExtensionID()

type managerExtension struct {
	pid       *actor.PID
	identity  string    // the child's identity under a Local manager; "" on a grain
	placement Placement // nil: no read fence needed (fence.go)
	routes    *routes   // the kind's routes under a Local manager; nil on a grain
}

func (*managerExtension) ExtensionID() ctxext.ContextExtensionID { return managerExtensionID }

// ManagerOf returns the manager that placed the actor of ctx — where it sends
// Leave — or nil for an actor not placed by Local. It is kept on the actor's
// context, so it survives a supervisor restart of the actor.
//
// Actors are spawned from the root and watched rather than spawned as the
// manager's children, because Proto.Actor's child set keeps a reference to
// removed children (PIDSet.Remove does not clear the vacated slot), which
// would keep every passivated actor in memory.
func ManagerOf(ctx actor.Context) (manager *actor.PID) {
	if ext := managerExtensionOf(ctx); ext != nil {
		return ext.pid
	}
	return nil
}

func managerExtensionOf(ctx actor.Context) (ext *managerExtension) {
	// Proto.Actor's extension table panics on an index past its end, which
	// is what an actor without our extension may hit.
	defer func() { _ = recover() }()
	ext, _ = ctx.Get(managerExtensionID).(*managerExtension)
	return ext
}

// LeaverOf returns what the actor of ctx calls to ask its manager to let it
// leave (a Leave, sent with the actor as its sender), or nil for an actor
// not placed by this package. Under a Local manager it first closes the
// actor's direct route, so that a caller who hears from the actor after it
// asked to leave reaches the manager, behind the Leave, and not the actor.
func LeaverOf(ctx actor.Context) func(recoveryFailed bool) {
	ext := managerExtensionOf(ctx)
	if ext == nil {
		return nil
	}
	root, self := ctx.ActorSystem().Root, ctx.Self()
	return func(recoveryFailed bool) {
		if ext.routes != nil {
			ext.routes.closeFor(ext.identity, self)
		}
		root.RequestWithCustomSender(ext.pid, &Leave{RecoveryFailed: recoveryFailed}, self)
	}
}

// Leave is what an actor sends its manager, with ctx.Request so the manager
// knows the sender, when it wants to stop (idle, or broken after a failed
// write). The manager stops forwarding to it, answers
// LeaveGranted — which the child receives after every message forwarded
// before — and holds new messages until the child has terminated.
type Leave struct{ RecoveryFailed bool }

// Recovery backoff after failed activations of one identity: it doubles from
// recoveryBackoffMin to recoveryBackoffMax, and a random half of it is
// jitter, so identities that failed together do not retry together.
const (
	recoveryBackoffMin = 100 * time.Millisecond
	recoveryBackoffMax = 5 * time.Second
)

// Leave's RecoveryFailed says the child could not recover from its journal:
// the manager then waits before it activates the identity again (see
// recoveryBackoff) and answers its messages meanwhile with
// STORE_UNAVAILABLE, so a store outage does not turn every message into a
// recovery attempt.
//
// LeaveGranted tells a child that nothing more will be forwarded to it.
type LeaveGranted struct{}

// Stay is what a child that got LeaveGranted sends back (with ctx.Request)
// when work arrived meanwhile and it must not stop: the manager forwards the
// messages it held to the same child and goes on forwarding.
type Stay struct{}

type child struct {
	pid            *actor.PID
	leaving        bool
	recoveryFailed bool
	held           []held
}

// cooling is an identity whose recovery failed: not activated before until.
type cooling struct {
	until    time.Time
	failures int
}

type held struct {
	msg    any
	sender *actor.PID
}

type manager struct {
	mailbox  actor.PropsOption
	produce  Producer
	kind     string
	place    func(kind, identity string) Placement // nil unless WithPlacement
	routes   *routes                               // where Request and Send find children in service
	children map[string]*child
	byPID    map[string]string   // pid id → identity
	cooling  map[string]*cooling // identities whose recovery failed
}

// unavailable is the answer to a message for an identity that is cooling
// down after failed recoveries.
func unavailable(identity string) *messages.Rejection {
	return messages.Reject(messages.CodeStoreUnavailable, "%s cannot be recovered now; retry shortly", identity)
}

func (m *manager) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *deliver:
		m.deliver(ctx, msg.identity, msg.msg, ctx.Sender())
		if msg.counted {
			m.routes.handled(msg.identity, m.inService(msg.identity))
		}
	case *handBack:
		// The child that got it is leaving (or gone by now, its Terminated
		// overtaking this message): it goes to whoever serves the identity
		// next, exactly as if it had arrived now.
		m.deliver(ctx, msg.identity, msg.msg, msg.sender)
	case *Leave:
		identity, ok := m.byPID[ctx.Sender().GetId()]
		if !ok {
			return
		}
		if c := m.children[identity]; c != nil && !c.leaving {
			c.leaving = true
			c.recoveryFailed = msg.RecoveryFailed
			m.routes.close(identity) // no direct message behind the grant
			ctx.Send(c.pid, &LeaveGranted{})
		}
	case *Stay:
		identity, ok := m.byPID[ctx.Sender().GetId()]
		if !ok {
			return
		}
		if c := m.children[identity]; c != nil && c.leaving {
			c.leaving = false
			for _, h := range c.held {
				ctx.RequestWithCustomSender(c.pid, h.msg, h.sender)
			}
			c.held = nil
			m.routes.open(identity, c.pid)
		}
	case *actor.Stopping:
		// The children are not the manager's in Proto.Actor's sense: stop
		// them explicitly, and wait, so Stop leaves nothing running.
		for _, c := range m.children {
			_ = ctx.ActorSystem().Root.StopFuture(c.pid).Wait()
		}
	case *actor.Terminated:
		identity, ok := m.byPID[msg.Who.GetId()]
		if !ok {
			return
		}
		delete(m.byPID, msg.Who.GetId())
		c := m.children[identity]
		delete(m.children, identity)
		m.routes.close(identity) // stopped without leaving: from outside
		if c == nil {
			return
		}
		if c.recoveryFailed {
			m.coolDown(identity)
			for _, h := range c.held {
				if h.sender != nil {
					ctx.Send(h.sender, unavailable(identity))
				}
			}
			return
		}
		delete(m.cooling, identity)
		if len(c.held) == 0 {
			return
		}
		// Messages arrived while it was leaving: a new incarnation takes them.
		next := m.spawn(ctx, identity)
		for _, h := range c.held {
			ctx.RequestWithCustomSender(next.pid, h.msg, h.sender)
		}
		m.routes.open(identity, next.pid)
	}
}

// inService is the PID of identity's child while messages may go to it
// directly, or nil: none, or it is leaving.
func (m *manager) inService(identity string) *actor.PID {
	if c := m.children[identity]; c != nil && !c.leaving {
		return c.pid
	}
	return nil
}

// deliver hands msg, from sender, to the child serving identity: spawned if
// there is none (unless the identity is cooling down), held if it is leaving.
func (m *manager) deliver(ctx actor.Context, identity string, msg any, sender *actor.PID) {
	c := m.children[identity]
	if c == nil {
		if cool := m.cooling[identity]; cool != nil && time.Now().Before(cool.until) {
			if sender != nil {
				ctx.Send(sender, unavailable(identity))
			}
			return
		}
		c = m.spawn(ctx, identity)
	}
	if !c.leaving {
		if _, alive := ctx.ActorSystem().ProcessRegistry.GetLocal(c.pid.GetId()); !alive {
			// Stopped from outside: out of the registry, but Proto.Actor runs
			// its Stopped before it sends the Terminated. Forwarded, the
			// message would be a dead letter (a Send lost); held, it goes to
			// the successor, as if the child had left.
			c.leaving = true
			m.routes.close(identity)
		}
	}
	if c.leaving {
		c.held = append(c.held, held{msg: msg, sender: sender})
		return
	}
	ctx.RequestWithCustomSender(c.pid, msg, sender)
}

// coolDown records one more failed recovery of identity and when it may be
// activated again.
func (m *manager) coolDown(identity string) {
	if m.cooling == nil {
		m.cooling = map[string]*cooling{}
	}
	cool := m.cooling[identity]
	if cool == nil {
		cool = &cooling{}
		m.cooling[identity] = cool
	}
	cool.failures++
	d := min(recoveryBackoffMin<<min(cool.failures-1, 16), recoveryBackoffMax)
	cool.until = time.Now().Add(d/2 + rand.N(d/2+1))
}

func (m *manager) spawn(ctx actor.Context, identity string) *child {
	if m.byPID == nil {
		m.byPID = map[string]string{}
	}
	produce := m.produce
	ext := &managerExtension{pid: ctx.Self(), identity: identity, routes: m.routes}
	if m.place != nil {
		ext.placement = m.place(m.kind, identity)
	}
	props := actor.PropsFromProducer(func() actor.Actor { return produce(identity) }, m.mailbox,
		actor.WithOnInit(func(c actor.Context) { c.Set(ext) }))
	pid := ctx.ActorSystem().Root.Spawn(props)
	ctx.Watch(pid)
	c := &child{pid: pid}
	m.children[identity] = c
	m.byPID[pid.GetId()] = identity
	return c
}
