package cluster

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// breakers builds a breaker per identity, counting incarnations per
// identity; an identity's first incarnation breaks once release(identity)
// is closed.
type breakers struct {
	incarnations sync.Map // identity → *atomic.Int64
	releases     sync.Map // identity → chan struct{}
	blocked      sync.Map // identity → chan struct{}, closed once "break" waits
}

func (bs *breakers) blockedOn(identity string) chan struct{} {
	ch, _ := bs.blocked.LoadOrStore(identity, make(chan struct{}))
	return ch.(chan struct{})
}

func (bs *breakers) release(identity string) chan struct{} {
	ch, _ := bs.releases.LoadOrStore(identity, make(chan struct{}))
	return ch.(chan struct{})
}

func (bs *breakers) produce(identity string) actor.Actor {
	n, _ := bs.incarnations.LoadOrStore(identity, &atomic.Int64{})
	return &breaker{incarnations: n.(*atomic.Int64), release: bs.release(identity), blocked: bs.blockedOn(identity)}
}

// breaker stands for an actor whose write failed: its first incarnation,
// on "break", waits for the test's release, then asks to leave and hands
// back (HandBack) whatever reaches it afterwards; had it refused them, the
// caller would read "refused". Every incarnation answers an Int64Value with
// its incarnation number (1, 2, ...).
type breaker struct {
	incarnations *atomic.Int64
	release      <-chan struct{}
	blocked      chan<- struct{}
	inc          int64
	broken       bool
}

func (b *breaker) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		b.inc = b.incarnations.Add(1)
	case *wrapperspb.StringValue:
		if b.inc == 1 {
			close(b.blocked)
			<-b.release
			b.broken = true
			ctx.ActorSystem().Root.RequestWithCustomSender(ManagerOf(ctx), &Leave{}, ctx.Self())
		}
		ctx.Respond(wrapperspb.String("broke"))
	case *wrapperspb.Int64Value:
		if b.broken {
			if !HandBack(ctx) {
				ctx.Respond(wrapperspb.String("refused"))
			}
			return
		}
		ctx.Respond(wrapperspb.Int64(b.inc))
	case *LeaveGranted:
		ctx.Stop(ctx.Self())
	}
}

func wantSuccessorAnswer(t *testing.T, got any) {
	t.Helper()
	switch got := got.(type) {
	case *wrapperspb.Int64Value:
		if got.Value < 2 {
			t.Fatalf("answered by incarnation %d, which had broken down", got.Value)
		}
	default:
		t.Fatalf("a message that reached the broken incarnation was answered %v, want the successor's answer", got)
	}
}

// TestLocalHandBackToSuccessor: messages the manager forwarded to a child
// before it saw the child's Leave are served by the successor, not refused.
func TestLocalHandBackToSuccessor(t *testing.T) {
	system := actor.NewActorSystem()
	bs := &breakers{}
	l := NewLocal(system, map[string]Producer{"b": bs.produce})
	t.Cleanup(func() { l.Stop(); system.Shutdown() })
	manager := l.managers["b"]

	broke := system.Root.RequestFuture(manager, &deliver{identity: "x", msg: wrapperspb.String("break")}, 10*time.Second)
	const n = 8
	futures := make([]*actor.Future, n)
	for i := range futures {
		futures[i] = system.Root.RequestFuture(manager, &deliver{identity: "x", msg: wrapperspb.Int64(0)}, 10*time.Second)
	}
	// The manager forwards in order: once it has answered for another
	// identity, all n wait in the blocked child's mailbox, behind "break".
	if _, err := system.Root.RequestFuture(manager, &deliver{identity: "probe", msg: wrapperspb.Int64(0)}, 10*time.Second).Result(); err != nil {
		t.Fatal(err)
	}
	close(bs.release("x"))
	if _, err := broke.Result(); err != nil {
		t.Fatal(err)
	}
	for _, f := range futures {
		res, err := f.Result()
		if err != nil {
			t.Fatal(err)
		}
		wantSuccessorAnswer(t, res)
	}
}

// TestGrainHandBackToSuccessor: on a grain, requests that reach a broken
// activation are bounced to their callers' Grains.Request, which retries
// them on the next activation.
func TestGrainHandBackToSuccessor(t *testing.T) {
	g := startTestGrains(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id := strconv.FormatInt(time.Now().UnixNano(), 36) // fresh per run (-count)
	broke := make(chan error, 1)
	go func() { _, err := g.Request(ctx, "breaker", id, wrapperspb.String("break")); broke <- err }()
	<-testBreakers.blockedOn(id)
	const n = 8
	out := make(chan any, n)
	for range n {
		go func() {
			res, err := g.Request(ctx, "breaker", id, wrapperspb.Int64(0))
			if err != nil {
				out <- err
				return
			}
			out <- res
		}()
	}
	// No hook says when the requests are queued on the activation; those
	// that arrive later meet the stopped one or the successor, and must get
	// the successor's answer just the same.
	time.Sleep(50 * time.Millisecond)
	close(testBreakers.release(id))
	if err := <-broke; err != nil {
		t.Fatal(err)
	}
	for range n {
		wantSuccessorAnswer(t, <-out)
	}
}
