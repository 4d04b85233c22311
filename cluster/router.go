// Package cluster places actors: it turns a (kind, identity) pair into a live
// actor and delivers a message to it. Actors never learn where they run, so a
// multi-node placement (Proto.Actor cluster grains) can replace the local one
// without changing them.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/messages"
)

// Router delivers messages to actors by kind and identity, activating them on
// demand. Implementations must be safe for concurrent use.
//
// Request returns the actor's reply. A reply that is a *messages.Rejection is
// returned as the error, so callers match domain refusals with errors.As.
// ErrTimeout means no reply arrived before the context's deadline (or the
// default timeout when the context has none); the request may still have
// taken effect.
type Router interface {
	Request(ctx context.Context, kind, identity string, msg proto.Message) (proto.Message, error)
	Send(kind, identity string, msg proto.Message)
}

// AsyncRequester is a Router that can hand a reply to a function instead
// of blocking a goroutine on it (Local; Grains for a grain of this member). RequestAsync delivers msg as
// Request does and calls then once with what Request would return —
// ErrTimeout after timeout — on whichever goroutine has the answer, so then
// must not block: an actor posts it to its own mailbox.
type AsyncRequester interface {
	RequestAsync(kind, identity string, msg proto.Message, timeout time.Duration, then func(proto.Message, error))
}

// RequestAsync is r's RequestAsync when r is an AsyncRequester, and
// RequestInBackground otherwise.
func RequestAsync(r Router, kind, identity string, msg proto.Message, timeout time.Duration, then func(proto.Message, error)) {
	if a, ok := r.(AsyncRequester); ok {
		a.RequestAsync(kind, identity, msg, timeout, then)
		return
	}
	RequestInBackground(r, kind, identity, msg, timeout, then)
}

// RequestInBackground is RequestAsync on a goroutine of its own, for a
// router that cannot do better: it waits in r.Request for at most timeout.
func RequestInBackground(r Router, kind, identity string, msg proto.Message, timeout time.Duration, then func(proto.Message, error)) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		then(r.Request(ctx, kind, identity, msg))
	}()
}

// ErrTimeout is returned when an actor does not answer in time.
var ErrTimeout = errors.New("actor request timed out")

// ErrUnknownKind is returned for a kind that was never registered.
var ErrUnknownKind = errors.New("unknown actor kind")

// DefaultRequestTimeout bounds a request whose context has no deadline.
const DefaultRequestTimeout = 5 * time.Second

// Producer builds the actor for one identity of a kind.
type Producer func(identity string) actor.Actor

// replyError turns an actor's reply into the (reply, error) pair of Request.
func replyError(kind, identity string, res any, err error) (proto.Message, error) {
	if err != nil {
		if errors.Is(err, actor.ErrTimeout) {
			return nil, fmt.Errorf("request %s/%s: %w", kind, identity, ErrTimeout)
		}
		return nil, fmt.Errorf("request %s/%s: %w", kind, identity, err)
	}
	switch r := res.(type) {
	case *messages.Rejection:
		return nil, r
	case proto.Message:
		return r, nil
	default:
		return nil, fmt.Errorf("request %s/%s: unexpected reply %T", kind, identity, res)
	}
}
