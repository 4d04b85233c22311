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
	return handBackVia(managerExtensionOf(ctx), ctx.ActorSystem().Root, ctx.Self(), ctx.Message(), ctx.Sender())
}

// handBackVia is HandBack for msg from sender, sent by the actor self that
// ext placed (nil: not placed by this package).
func handBackVia(ext *managerExtension, root *actor.RootContext, self *actor.PID, msg any, sender *actor.PID) bool {
	switch {
	case ext == nil:
		return false
	case ext.identity != "":
		root.Send(ext.pid, &handBack{identity: ext.identity, msg: msg, sender: sender})
		return true
	case awaitsAnswer(sender):
		root.Send(sender, &actor.DeadLetterResponse{Target: self})
		return true
	}
	return false
}

// awaitsAnswer reports whether sender is a future, the only kind of sender
// that waits for an answer (and retries on a dead letter); a reply or a
// completion sent from an actor needs none.
func awaitsAnswer(sender *actor.PID) bool {
	return sender != nil && strings.HasPrefix(sender.GetId(), "future")
}
