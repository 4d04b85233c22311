package cluster

import (
	"strings"

	"github.com/asynkron/protoactor-go/actor"
)

// handBack is a message a leaving child passes back to its Local manager
// instead of serving it; the manager delivers it again (see HandBack).
type handBack struct {
	identity string
	msg      any
	sender   *actor.PID
}

// HandBack passes the message ctx is processing to the next incarnation of
// the actor, for an actor that is out of service and has asked to leave
// (Leave) — typically after a failed write. Without it, a message that was
// forwarded before the manager saw the Leave would be refused although a
// successor could serve it at once.
//
// Under a Local manager the message goes back to the manager, which holds
// it until this child has terminated and then gives it to the successor
// (or answers STORE_UNAVAILABLE if the identity is cooling down). On a grain
// a caller waiting on a future is answered with a dead letter, which makes
// Grains.Request look the grain up again and retry. HandBack reports false
// — and does nothing — when neither applies (an actor not placed by this
// package, or a sender that is an actor, which would not retry): the caller
// then answers the message itself.
func HandBack(ctx actor.Context) bool {
	ext := managerExtensionOf(ctx)
	if ext == nil {
		return false
	}
	if ext.identity != "" {
		ctx.ActorSystem().Root.Send(ext.pid, &handBack{identity: ext.identity, msg: ctx.Message(), sender: ctx.Sender()})
		return true
	}
	s := ctx.Sender()
	if s == nil || !strings.HasPrefix(s.GetId(), "future") {
		return false
	}
	ctx.Send(s, &actor.DeadLetterResponse{Target: ctx.Self()})
	return true
}
