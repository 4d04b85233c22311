package cluster

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"
)

// echo answers every int with itself plus one; a negative one it keeps,
// answering -n later, when told (see TestInboxLateAnswerDropped).
type echo struct{ late chan *actor.PID }

func (e *echo) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case int:
		if m < 0 {
			e.late <- ctx.Sender()
			return
		}
		ctx.Respond(m + 1)
	}
}

func newEcho(t *testing.T) (*actor.ActorSystem, *inbox, *actor.PID, chan *actor.PID) {
	t.Helper()
	system := actor.NewActorSystem()
	t.Cleanup(system.Shutdown)
	late := make(chan *actor.PID, 1)
	pid := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &echo{late: late} }))
	return system, newInbox(system), pid, late
}

// Many requests at once: each gets its own answer, and nothing is left
// waiting.
func TestInboxAnswersEachRequestItsOwn(t *testing.T) {
	system, in, pid, _ := newEcho(t)
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				n := g*1000 + i
				res, err := in.request(context.Background(), system.Root, pid, n)
				if err != nil || res != n+1 {
					t.Errorf("request %d: %v, %v", n, res, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(t, in.waitingCount())
}

// A request to an actor that is gone gets actor.ErrDeadLetter at once, as a
// future would (Grains.Request retries on it).
func TestInboxDeadLetter(t *testing.T) {
	system, in, pid, _ := newEcho(t)
	require.NoError(t, system.Root.StopFuture(pid).Wait())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := in.request(ctx, system.Root, pid, 1)
	require.ErrorIs(t, err, actor.ErrDeadLetter)
	require.Zero(t, in.waitingCount())
}

// At the deadline the request ends with actor.ErrTimeout; the answer that
// comes later is dropped and blocks nobody; a cancelled request ends with
// context.Canceled.
func TestInboxTimeoutThenLateAnswerDropped(t *testing.T) {
	system, in, pid, late := newEcho(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := in.request(ctx, system.Root, pid, -1)
	require.ErrorIs(t, err, actor.ErrTimeout)
	require.Zero(t, in.waitingCount())
	sender := <-late // the actor got the request: answer it now
	system.Root.Send(sender, 7)
	res, err := in.request(context.Background(), system.Root, pid, 41)
	require.NoError(t, err)
	require.Equal(t, 42, res, "the late answer went nowhere")

	cctx, ccancel := context.WithCancel(context.Background())
	go func() { <-late; ccancel() }()
	_, err = in.request(cctx, system.Root, pid, -2)
	require.True(t, errors.Is(err, context.Canceled), "got %v", err)
	require.Zero(t, in.waitingCount())
}

// When the request counter wraps onto an id still waiting, the new request
// takes the next free id: the two never share an answer.
func TestInboxWrapSkipsAWaitingID(t *testing.T) {
	system, in, pid, late := newEcho(t)
	first := in.open() // id 1, left waiting
	in.next.Store(^uint32(0))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := in.request(ctx, system.Root, pid, 41) // wraps past 0 and 1
	require.NoError(t, err)
	require.Equal(t, 42, res)
	system.Root.Send(first.PID, "for the first")
	got, err := first.wait(ctx)
	require.NoError(t, err)
	require.Equal(t, "for the first", got)
	require.Zero(t, in.waitingCount())
	require.Empty(t, late)
}

// An async request's function gets the answer, or actor.ErrTimeout once
// when none comes — and then not the late answer; nothing is left waiting.
func TestInboxAsync(t *testing.T) {
	system, in, pid, late := newEcho(t)
	type outcome struct {
		res any
		err error
	}
	got := make(chan outcome, 4)
	then := func(res any, err error) { got <- outcome{res, err} }

	system.Root.RequestWithCustomSender(pid, 1, in.async(time.Minute, then))
	o := <-got
	require.NoError(t, o.err)
	require.Equal(t, 2, o.res)

	system.Root.RequestWithCustomSender(pid, -1, in.async(20*time.Millisecond, then))
	o = <-got
	require.ErrorIs(t, o.err, actor.ErrTimeout)
	system.Root.Send(<-late, 7) // the late answer
	system.Root.RequestWithCustomSender(pid, 41, in.async(time.Minute, then))
	o = <-got
	require.NoError(t, o.err)
	require.Equal(t, 42, o.res, "the late answer went nowhere")
	require.Empty(t, got, "each function called once")
	require.Zero(t, in.waitingCount())
}
