package cluster

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
)

// Placement tells an actor how far it can trust that no other copy of it
// serves, for its read fence (actors.Journaled). Proto.Actor can run two
// copies of a grain while members disagree on the member list; a copy must
// not answer from what it recovered while another copy may acknowledge
// writes it has not seen.
//
// A node's topology is settled once every member of it has been seen (by
// gossip) to report the same member list: each of them has then applied
// it, so each stopped its copies of the grains it no longer owns, and a
// member that disagrees (one that joined or left since) makes a new
// topology here before its own copies may settle. Hence a copy that
// recovered, or confirmed with the journal, after its node's topology
// settled holds the latest history from then on; a copy activated while the
// topology was unsettled must wait for it to settle, then confirm.
//
// Implementations are safe for concurrent use; Owned is called on the
// actor's goroutine only.
type Placement interface {
	// Settled returns the node's topology version and whether it is settled.
	Settled() (version uint64, settled bool)
	// WhenSettled calls fn, on another goroutine, once version is settled or
	// is no longer the node's topology (call Settled again then).
	WhenSettled(version uint64, fn func())
	// Owned reports whether this node owns the actor as it now sees the members.
	Owned() bool
}

// SettleTimeout is how long a topology may stay unsettled before it is
// treated as settled anyway (logged): a member whose gossip does not get
// through must not keep the grains activated meanwhile from serving for
// good. Membership converges within about 1.5 s here (static list polled
// every second, gossip every 300 ms).
const SettleTimeout = 5 * time.Second

// settlePoll is how often an unsettled topology's gossip is looked at.
const settlePoll = 20 * time.Millisecond

// PlacementOf returns the placement of the actor of ctx, or nil when it
// needs no read fence: an actor placed by Local (one copy per identity on
// one node) or not placed by this package.
func PlacementOf(ctx actor.Context) Placement {
	if ext := managerExtensionOf(ctx); ext != nil {
		return ext.placement
	}
	return nil
}

// HandBackHeldFunc returns what passes a message that the actor of ctx
// held without processing it (msg, from sender) to the actor's next
// incarnation, as HandBack does for the message being processed: it
// reports false, doing nothing, when that cannot be done (answer it then).
// It may be called later, outside Receive, on the actor's goroutine.
func HandBackHeldFunc(ctx actor.Context) func(msg any, sender *actor.PID) bool {
	ext, root, self := managerExtensionOf(ctx), ctx.ActorSystem().Root, ctx.Self()
	return func(msg any, sender *actor.PID) bool { return handBackVia(ext, root, self, msg, sender) }
}

// WithPlacement gives every actor of a Local the placement place returns
// for its identity (nil: none): for tests that play two nodes of a cluster
// with two Locals on one journal.
func WithPlacement(place func(kind, identity string) Placement) LocalOption {
	return func(o *localOptions) { o.placement = place }
}

// grainPlacement is the Placement of one grain activation.
type grainPlacement struct {
	g    *grain
	self string // this member's address
}

func (p grainPlacement) Settled() (uint64, bool) { return p.g.grains.settled() }
func (p grainPlacement) WhenSettled(v uint64, fn func()) {
	p.g.grains.whenSettled(v, fn)
}
func (p grainPlacement) Owned() bool { return p.g.owned(p.self) }

// settleState is the settling of one topology (an ownership version).
type settleState struct {
	hash    uint64
	ids     []string // member ids
	settled atomic.Bool
}

// settleWaiters are the WhenSettled calls waiting for the next change.
type settleWaiters struct {
	mu  sync.Mutex
	fns []func()
}

func (g *Grains) settled() (uint64, bool) {
	o := g.owners.Load()
	if o == nil {
		return 0, false
	}
	return o.version, o.settle.settled.Load()
}

func (g *Grains) whenSettled(v uint64, fn func()) {
	g.waiters.mu.Lock()
	if o := g.owners.Load(); o != nil && (o.version != v || o.settle.settled.Load()) {
		g.waiters.mu.Unlock()
		go fn()
		return
	}
	g.waiters.fns = append(g.waiters.fns, fn)
	g.waiters.mu.Unlock()
}

// wake runs every waiting WhenSettled call: the topology changed or settled.
func (g *Grains) wake() {
	g.waiters.mu.Lock()
	fns := g.waiters.fns
	g.waiters.fns = nil
	g.waiters.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// topologyChanged starts watching a new topology settle; o is already the
// node's ownership.
func (g *Grains) topologyChanged(o *ownership, t *pcluster.ClusterTopology) {
	o.settle = &settleState{hash: t.TopologyHash}
	for _, m := range t.Members {
		o.settle.ids = append(o.settle.ids, m.Id)
	}
	g.wake()
	if len(o.settle.ids) == 1 && o.settle.ids[0] == g.c.ActorSystem.ID {
		g.settleNow(o, 0, false) // alone: nobody to disagree
		return
	}
	go g.watchSettle(o)
}

func (g *Grains) watchSettle(o *ownership) {
	start := time.Now()
	for g.owners.Load() == o {
		if g.agreed(o.settle) {
			g.settleNow(o, time.Since(start), false)
			return
		}
		if time.Since(start) > SettleTimeout {
			g.settleNow(o, time.Since(start), true)
			return
		}
		time.Sleep(settlePoll)
	}
}

func (g *Grains) settleNow(o *ownership, took time.Duration, timedOut bool) {
	o.settle.settled.Store(true)
	if timedOut {
		g.log.Warn("cluster topology not confirmed by every member in time; serving on", "version", o.version,
			"members", len(o.settle.ids), "waited", took)
	} else if took > 0 {
		g.log.Info("cluster topology settled", "version", o.version, "members", len(o.settle.ids), "took", took)
	}
	g.wake()
}

// agreed reports whether every member of s reports s's topology by gossip.
func (g *Grains) agreed(s *settleState) bool {
	state, err := g.c.Gossip.GetState(pcluster.TopologyKey)
	if err != nil {
		return false
	}
	for _, id := range s.ids {
		kv := state[id]
		if kv == nil || kv.Value == nil {
			return false
		}
		var t pcluster.ClusterTopology
		if err := kv.Value.UnmarshalTo(&t); err != nil || t.TopologyHash != s.hash {
			return false
		}
	}
	return true
}
