package cluster

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// flighty answers each request with its identity, and passivates after
// idle, or after every request (eager): through Leave (graceful) or by
// stopping itself at once (abrupt).
// Its idle timer is its own (a message to itself with a generation), not
// Proto.Actor's receive timeout, whose timer races with the actor under
// -race at millisecond timeouts (a library race).
type flighty struct {
	identity string
	abrupt   bool
	gen      int
	idle     time.Duration
	eager    bool
	started  *atomic.Int64
}

type idleTick struct{ gen int }

func (f *flighty) arm(ctx actor.Context) {
	f.gen++
	self, root, gen := ctx.Self(), ctx.ActorSystem().Root, f.gen
	time.AfterFunc(f.idle, func() { root.Send(self, &idleTick{gen: gen}) })
}

func (f *flighty) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		f.started.Add(1)
		f.arm(ctx)
	case *idleTick:
		if msg.gen == f.gen {
			f.leave(ctx)
		}
	case *LeaveGranted:
		ctx.Stop(ctx.Self())
	case *wrapperspb.StringValue:
		f.arm(ctx)
		ctx.Respond(wrapperspb.String(f.identity))
		if f.eager {
			f.leave(ctx)
		}
	}
}

func (f *flighty) leave(ctx actor.Context) {
	f.gen++ // no idle tick after this
	if f.abrupt || ManagerOf(ctx) == nil {
		ctx.Stop(ctx.Self())
		return
	}
	ctx.ActorSystem().Root.RequestWithCustomSender(ManagerOf(ctx), &Leave{}, ctx.Self())
}

// One Grains per test binary: Proto.Actor's remote.Start sets gRPC's
// global logger, which races (under -race) with the gRPC goroutines of a
// member started earlier in the same process.
var (
	testGrainsOnce sync.Once
	testGrains     *Grains
	testGrainsErr  error
	activations    = map[string]*atomic.Int64{"f": {}, "leave": {}, "abrupt": {}}
	testBreakers   = &breakers{}
)

func startTestGrains(t testing.TB) *Grains {
	t.Helper()
	testGrainsOnce.Do(func() {
		testGrains, testGrainsErr = StartGrains(actor.NewActorSystem(), GrainsConfig{Host: "127.0.0.1", Port: 0, Kinds: map[string]Producer{
			"f": func(id string) actor.Actor {
				return &flighty{identity: id, idle: time.Minute, started: activations["f"]}
			},
			"leave": func(id string) actor.Actor {
				return &flighty{identity: id, idle: time.Millisecond, eager: true, started: activations["leave"]}
			},
			"breaker": testBreakers.produce,
			"abrupt": func(id string) actor.Actor {
				return &flighty{identity: id, abrupt: true, idle: time.Millisecond, eager: true, started: activations["abrupt"]}
			},
		}})
	})
	if testGrainsErr != nil {
		t.Fatal(testGrainsErr)
	}
	return testGrains
}

func TestGrainsReachByKindAndIdentity(t *testing.T) {
	g := startTestGrains(t)
	started := activations["f"]
	before := started.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Identities of this run only: the grains are shared by the package's
	// tests and by every -count repetition.
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	for _, id := range []string{"a" + run, "b" + run, "a" + run} {
		res, err := g.Request(ctx, "f", id, wrapperspb.String("hi"))
		if err != nil {
			t.Fatal(err)
		}
		if got := res.(*wrapperspb.StringValue).GetValue(); got != id {
			t.Fatalf("grain %s answered as %q", id, got)
		}
	}
	if n := started.Load() - before; n != 2 {
		t.Fatalf("%d activations, want 2", n)
	}
	if _, err := g.Request(ctx, "nope", "a", wrapperspb.String("hi")); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("unknown kind: %v", err)
	}
}

// TestGrainsPassivateWithoutLosingMail hammers grains that passivate after
// every request (and after 1 ms idle), so many requests race a stop however
// busy the machine is: none may be lost (a lost one
// would wait out its deadline). Both a graceful Leave and an abrupt stop are
// covered: late messages are bounced as dead letters and retried.
//
// A request that loses the race for its grain many times over waits for
// each new activation: on a busy machine (under -race, beside other tests)
// that took 1.5 s, so the deadline is generous and only a request that
// waited half of it counts as slow.
//
// It runs for Request and for RequestAsync (awaited here), whose dead
// letters take Request's way.
func TestGrainsPassivateWithoutLosingMail(t *testing.T) {
	g := startTestGrains(t)
	requests := map[string]func(ctx context.Context, kind, id string) (proto.Message, error){
		"sync": func(ctx context.Context, kind, id string) (proto.Message, error) {
			return g.Request(ctx, kind, id, wrapperspb.String("hi"))
		},
		"async": func(ctx context.Context, kind, id string) (proto.Message, error) {
			type answer struct {
				res proto.Message
				err error
			}
			got := make(chan answer, 1)
			dl, _ := ctx.Deadline()
			g.RequestAsync(kind, id, wrapperspb.String("hi"), time.Until(dl), func(res proto.Message, err error) {
				got <- answer{res, err}
			})
			a := <-got
			return a.res, a.err
		},
	}
	for _, run := range []struct{ kind, how string }{{"leave", "sync"}, {"abrupt", "sync"}, {"leave", "async"}, {"abrupt", "async"}} {
		kind, request := run.kind, requests[run.how]
		t.Run(kind+"/"+run.how, func(t *testing.T) {
			started := activations[kind]
			const callers, perCaller = 16, 150
			const deadline = 10 * time.Second
			var wg sync.WaitGroup
			var failed, slow atomic.Int64
			start := make(chan struct{})
			for c := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					for i := range perCaller {
						id := []string{"x", "y", "z"}[(c+i)%3]
						ctx, cancel := context.WithTimeout(context.Background(), deadline)
						t0 := time.Now()
						res, err := request(ctx, kind, id)
						cancel()
						if err != nil || res.(*wrapperspb.StringValue).GetValue() != id {
							failed.Add(1)
						}
						if time.Since(t0) > deadline/2 {
							slow.Add(1)
						}
						if i%10 == 0 {
							time.Sleep(2 * time.Millisecond) // let grains go idle
						}
					}
				}()
			}
			close(start)
			wg.Wait()
			t.Logf("%d requests, %d activations (passivations raced), %d failed, %d slower than %v",
				callers*perCaller, started.Load(), failed.Load(), slow.Load(), deadline/2)
			if failed.Load() > 0 || slow.Load() > 0 {
				t.Fatalf("%d requests failed and %d were slow", failed.Load(), slow.Load())
			}
			if started.Load() < 10 {
				t.Fatalf("only %d activations: the test did not race passivation", started.Load())
			}
		})
	}
}

var _ proto.Message = (*wrapperspb.StringValue)(nil)
