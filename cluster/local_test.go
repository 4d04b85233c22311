package cluster_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/concert/ticketing/cluster"
	"github.com/concert/ticketing/messages"
)

// counter answers each Int64Value with its running total; it asks to leave
// after every message, so passivation races with delivery constantly.
type counter struct {
	total      int64
	starts     *sync.Map
	identity   string
	eagerLeave bool
}

func (c *counter) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		n, _ := c.starts.LoadOrStore(c.identity, new(int))
		*(n.(*int))++
	case *wrapperspb.Int64Value:
		if msg.Value < 0 {
			ctx.Respond(messages.Reject(messages.CodeInvalidAmount, "negative"))
			return
		}
		c.total += msg.Value
		ctx.Respond(wrapperspb.Int64(c.total))
		if c.eagerLeave {
			ctx.Request(cluster.ManagerOf(ctx), &cluster.Leave{})
		}
	case *cluster.LeaveGranted:
		ctx.Stop(ctx.Self())
	}
}

func newLocal(t *testing.T, eagerLeave bool) (*cluster.Local, *sync.Map) {
	t.Helper()
	system := actor.NewActorSystem()
	starts := &sync.Map{}
	l := cluster.NewLocal(system, map[string]cluster.Producer{
		"counter": func(identity string) actor.Actor {
			return &counter{starts: starts, identity: identity, eagerLeave: eagerLeave}
		},
	})
	t.Cleanup(func() { l.Stop(); system.Shutdown() })
	return l, starts
}

func TestLocalRoutesByIdentity(t *testing.T) {
	l, _ := newLocal(t, false)
	ctx := context.Background()
	for i := int64(1); i <= 3; i++ {
		res, err := l.Request(ctx, "counter", "a", wrapperspb.Int64(i))
		require.NoError(t, err)
		assert.Equal(t, i*(i+1)/2, res.(*wrapperspb.Int64Value).Value)
	}
	res, err := l.Request(ctx, "counter", "b", wrapperspb.Int64(10))
	require.NoError(t, err)
	assert.Equal(t, int64(10), res.(*wrapperspb.Int64Value).Value, "identity b has its own state")
}

func TestLocalRejectionIsTheError(t *testing.T) {
	l, _ := newLocal(t, false)
	_, err := l.Request(context.Background(), "counter", "a", wrapperspb.Int64(-1))
	var rej *messages.Rejection
	require.ErrorAs(t, err, &rej)
	assert.Equal(t, messages.CodeInvalidAmount, rej.Code)

	_, err = l.Request(context.Background(), "nope", "a", wrapperspb.Int64(1))
	assert.ErrorIs(t, err, cluster.ErrUnknownKind)
}

// Every message sent while actors keep leaving is answered: none is forwarded
// to a child that is stopping.
func TestLocalNoMessageLostDuringPassivation(t *testing.T) {
	l, starts := newLocal(t, true)
	const callers, perCaller = 20, 50
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, callers*perCaller)
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			<-start
			for i := 0; i < perCaller; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := l.Request(ctx, "counter", strconv.Itoa(c%4), wrapperspb.Int64(1))
				cancel()
				if err != nil {
					errs <- err
				}
			}
		}(c)
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("request failed: %v", err)
	}
	restarted := false
	starts.Range(func(_, v any) bool {
		restarted = restarted || *(v.(*int)) > 1
		return true
	})
	assert.True(t, restarted, "actors were passivated and re-activated during the run")
}

func TestLocalTimeout(t *testing.T) {
	system := actor.NewActorSystem()
	l := cluster.NewLocal(system, map[string]cluster.Producer{
		"mute": func(string) actor.Actor { return actor.ReceiveFunc(func(actor.Context) {}) },
	})
	t.Cleanup(func() { l.Stop(); system.Shutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := l.Request(ctx, "mute", "x", wrapperspb.Int64(1))
	assert.True(t, errors.Is(err, cluster.ErrTimeout), "got %v", err)
}
