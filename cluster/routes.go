package cluster

import (
	"hash/maphash"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// routes lets Request and Send reach a live actor of one kind without the
// manager hop: each message through the manager costs a second mailbox and
// a goroutine wake (BenchmarkPlacementHop: about 2.5× the cost of a direct
// request here). The manager stays the only one that spawns, passivates
// and holds messages; routes only publishes, per identity, the PID the
// manager forwards to while that child is in service.
//
// Two rules keep what the manager guarantees (nothing lost behind a stop,
// and a message sent after another is received after it):
//   - A direct send happens under the identity's shard lock, and the
//     manager closes a route under the same lock before it grants a Leave,
//     so every direct message is in the child's mailbox ahead of its
//     LeaveGranted, as a forwarded one would be.
//   - No direct send while a message for the identity waits in the
//     manager's mailbox (pending > 0): it could overtake it. The manager
//     publishes a route only after forwarding what it was handed.
type routes struct {
	seed   maphash.Seed
	shards [routeShards]routeShard
}

const routeShards = 64

type routeShard struct {
	mu sync.Mutex
	m  map[string]*route
}

// route is one identity's entry: it exists while the child is in service
// or a message for it waits in the manager's mailbox.
type route struct {
	pid     *actor.PID // nil: closed, go through the manager
	pending int        // messages sent to the manager, not yet handled by it
	// leaving is the child that closed its own route when it asked to
	// leave (closeFor): neither handled nor open (a Stay sent before that
	// Leave) reopens it to that child; close, when the manager sees the
	// Leave or the Terminated, clears it, as open for a successor does.
	leaving *actor.PID
}

func newRoutes() *routes {
	r := &routes{seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].m = map[string]*route{}
	}
	return r
}

func (r *routes) shard(identity string) *routeShard {
	return &r.shards[maphash.String(r.seed, identity)%routeShards]
}

// send delivers msg from sender straight to identity's child
// and reports true when the route is open and nothing for the identity
// waits at the manager; otherwise it counts one more message pending at
// the manager and reports false: the caller then sends it to the manager,
// marked counted, and the manager calls handled once it has dealt with it.
// Sending to a stopped child answers a dead letter to sender on this
// goroutine, under the shard's lock: whatever that answer runs must not
// come back to routes.
func (r *routes) send(root *actor.RootContext, identity string, msg any, sender *actor.PID) bool {
	sh := r.shard(identity)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.m[identity]; e != nil && e.pid != nil && e.pending == 0 {
		root.RequestWithCustomSender(e.pid, msg, sender)
		return true
	}
	sh.entry(identity).pending++
	return false
}

// count counts one more message for identity sent to the manager, as send
// does when it cannot send directly.
func (r *routes) count(identity string) {
	sh := r.shard(identity)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.entry(identity).pending++
}

// handled is the manager saying it has forwarded (or held, or answered) a
// counted message for identity; pid is the child now in service, or nil
// when the identity has none or it is leaving.
func (r *routes) handled(identity string, pid *actor.PID) {
	sh := r.shard(identity)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[identity]
	if e == nil {
		return // cannot happen: each counted message made its entry
	}
	e.pending--
	if e.leavingChild(pid) {
		pid = nil
	}
	e.pid = pid
	if e.pid == nil && e.pending <= 0 && e.leaving == nil {
		delete(sh.m, identity)
	}
}

// open publishes pid as identity's child in service — unless pid has
// closed its route since (closeFor). The manager calls it only once it has
// forwarded every message it held for the identity.
func (r *routes) open(identity string, pid *actor.PID) {
	sh := r.shard(identity)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.entry(identity)
	if e.leavingChild(pid) {
		// The child asked to leave again after the Stay the manager is
		// acting on (the grant's close cleared any earlier mark): it stays
		// closed until the manager sees that Leave.
		return
	}
	e.pid, e.leaving = pid, nil
}

// close stops direct sends to identity's child; when it returns, no direct
// send to it is under way, so a message sent to the child after this (a
// LeaveGranted) is behind every direct message.
func (r *routes) close(identity string) {
	sh := r.shard(identity)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.m[identity]; e != nil {
		e.pid, e.leaving = nil, nil
		if e.pending <= 0 {
			delete(sh.m, identity)
		}
	}
}

// closeFor is close done by the child pid itself as it asks to leave, before
// it answers anyone: a caller's next message then goes to the manager, behind
// the Leave, and is held for the successor — not sent here to be handed back
// after messages that came later (breakDown relies on it).
func (r *routes) closeFor(identity string, pid *actor.PID) {
	sh := r.shard(identity)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.entry(identity)
	if e.pid != nil && e.pid.Equal(pid) {
		e.pid = nil
	}
	e.leaving = pid
}

// leavingChild reports whether pid is the child that closed its own route
// to leave (closeFor), which only the manager's close reopens to others.
func (e *route) leavingChild(pid *actor.PID) bool {
	return pid != nil && e.leaving != nil && e.leaving.Equal(pid)
}

// entry is identity's route, made if there is none; sh.mu is held.
func (sh *routeShard) entry(identity string) *route {
	e := sh.m[identity]
	if e == nil {
		e = &route{}
		sh.m[identity] = e
	}
	return e
}

// size is the number of identities with an entry (tests: nothing leaks).
func (r *routes) size() int {
	n := 0
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
