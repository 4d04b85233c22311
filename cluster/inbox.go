package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// inbox receives the answers to the requests this node sends: one process
// in the actor system's registry, whose reply PIDs differ only by their
// RequestId, each request waiting on a channel of its own.
//
// It stands in for a Proto.Actor future per request, which registers a
// process under a fresh string id and arms a timer: together about 7 % of
// the server's CPU in the sold-out profile (README, Performance). Here a
// request costs a map entry under a sharded lock and no timer when its
// context has a deadline. The remote carries a PID's RequestId both ways
// (remote.endpoint_writer/reader), so an answer from another member comes
// back the same way.
type inbox struct {
	system *actor.ActorSystem
	id     string // the process's id in the registry
	next   atomic.Uint32
	shards [inboxShards]inboxShard
}

const inboxShards = 32

type inboxShard struct {
	mu      sync.Mutex
	waiting map[uint32]waiter
}

// waiter is where a request's answer goes: its channel, or — for a
// request made with inbox.async — a function called with it.
type waiter struct {
	ch chan any
	fn func(any)
}

// newInbox registers an inbox in system. Its id starts with "future", so
// that awaitsAnswer (and anything else that knows Proto.Actor's futures)
// treats its PIDs as a waiting requester, and ends with random digits, so
// that an answer sent to the wrong member (a stale address) cannot match
// that member's own inbox and its requests.
func newInbox(system *actor.ActorSystem) *inbox {
	in := &inbox{system: system, id: fmt.Sprintf("future-inbox-%016x", rand.Uint64())}
	for i := range in.shards {
		in.shards[i].waiting = map[uint32]waiter{}
	}
	system.ProcessRegistry.Add(inboxProcess{in}, in.id)
	return in
}

// call is one request waiting in an inbox: send with PID as the sender,
// then wait for what reaches reply.
type call struct {
	in    *inbox
	PID   *actor.PID
	reply chan any
}

// open starts a request: answers sent to the call's PID reach its reply
// channel (the first one; later ones are dropped).
func (in *inbox) open() *call {
	reply := make(chan any, 1)
	return &call{in: in, PID: in.register(waiter{ch: reply}), reply: reply}
}

// register files w under a fresh request id and returns the PID answers
// to it are sent to.
func (in *inbox) register(w waiter) *actor.PID {
	var id uint32
	for {
		// 0 means no request id; and when the counter wraps, an id still
		// waiting (a request older than 2³² others) is skipped, not shared.
		if id = in.next.Add(1); id == 0 {
			continue
		}
		sh := &in.shards[id%inboxShards]
		sh.mu.Lock()
		_, taken := sh.waiting[id]
		if !taken {
			sh.waiting[id] = w
		}
		sh.mu.Unlock()
		if !taken {
			break
		}
	}
	// The system's address now, not at newInbox: a member's remote starts
	// (and sets it) after its inbox is made.
	return &actor.PID{Address: in.system.Address(), Id: in.id, RequestId: id}
}

// take removes and returns the waiter of request id, if it still waits.
func (in *inbox) take(id uint32) (waiter, bool) {
	sh := &in.shards[id%inboxShards]
	sh.mu.Lock()
	w, ok := sh.waiting[id]
	delete(sh.waiting, id)
	sh.mu.Unlock()
	return w, ok
}

// async registers a request whose answer is handed to then, on the
// goroutine that sends it (so then must not block), or — if none came
// within timeout — actor.ErrTimeout; then is called once. It returns the
// PID to send the request from. A request costs no goroutine and no
// context, where open and wait cost one of each per caller that must not
// block (a seat actor asking a wallet).
func (in *inbox) async(timeout time.Duration, then func(any, error)) *actor.PID {
	a := &asyncCall{in: in, then: then}
	a.pid = in.register(waiter{fn: a.answer})
	a.timer = time.AfterFunc(timeout, a.expire)
	return a.pid
}

// asyncCall is one request made with inbox.async.
type asyncCall struct {
	in    *inbox
	pid   *actor.PID
	then  func(any, error)
	timer *time.Timer // set before the request is sent, so before answer
}

func (a *asyncCall) answer(msg any) {
	a.timer.Stop()
	a.then(result(msg))
}

func (a *asyncCall) expire() {
	if _, ok := a.in.take(a.pid.RequestId); ok {
		a.then(nil, actor.ErrTimeout)
	}
}

// waitingCount is the number of requests that wait for an answer (tests).
func (in *inbox) waitingCount() int {
	n := 0
	for i := range in.shards {
		sh := &in.shards[i]
		sh.mu.Lock()
		n += len(sh.waiting)
		sh.mu.Unlock()
	}
	return n
}

// request sends msg to pid and waits for the answer until ctx ends or, when
// ctx has no deadline, for DefaultRequestTimeout. It answers as a
// Proto.Actor future would: actor.ErrDeadLetter when pid is not there,
// actor.ErrTimeout at the deadline; a cancelled ctx gives ctx.Err().
func (in *inbox) request(ctx context.Context, root *actor.RootContext, pid *actor.PID, msg any) (any, error) {
	return in.send(root, pid, msg).wait(ctx)
}

// send sends msg to pid with a call's PID as the sender and returns the
// call, whose answer the caller then waits for.
func (in *inbox) send(root *actor.RootContext, pid *actor.PID, msg any) *call {
	c := in.open()
	root.RequestWithCustomSender(pid, msg, c.PID)
	return c
}

// wait waits for the call's answer until ctx ends, or when ctx has no
// deadline for DefaultRequestTimeout (see request).
func (c *call) wait(ctx context.Context) (any, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRequestTimeout)
		defer cancel()
	}
	select {
	case r := <-c.reply:
		return result(r)
	case <-ctx.Done():
		return c.end(expiry(ctx))
	}
}

// end gives up the call with err, unless its answer came meanwhile.
func (c *call) end(err error) (any, error) {
	if _, ok := c.in.take(c.PID.RequestId); !ok {
		return result(<-c.reply) // taken by an answer, which is on its way
	}
	return nil, err
}

// expiry is why a request whose ctx ended gets no answer: actor.ErrTimeout
// at its deadline (as a future says), else ctx's error.
func expiry(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return actor.ErrTimeout
	}
	return ctx.Err()
}

// result is an answer as a future gives it.
func result(r any) (any, error) {
	if _, ok := r.(*actor.DeadLetterResponse); ok {
		return nil, actor.ErrDeadLetter
	}
	return r, nil
}

// inboxProcess is the inbox as the registry sees it.
type inboxProcess struct{ in *inbox }

// SendUserMessage hands an answer to the request its PID names.
func (p inboxProcess) SendUserMessage(pid *actor.PID, message any) {
	_, msg, _ := actor.UnwrapEnvelope(message)
	if w, ok := p.in.take(pid.GetRequestId()); ok {
		if w.fn != nil {
			w.fn(msg)
			return
		}
		w.ch <- msg // buffered 1, and taken once: never blocks
	}
}

// SendSystemMessage: a future takes a system message as its answer (a
// Terminated, for a watch); nothing here watches, so it is dropped.
func (p inboxProcess) SendSystemMessage(*actor.PID, any) {}

// Stop: the inbox lives as long as its actor system.
func (p inboxProcess) Stop(*actor.PID) {}
