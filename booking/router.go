package booking

import (
	"context"

	"google.golang.org/protobuf/proto"
)

// Router delivers a command to the actor (kind, identity) and returns its
// reply, as cluster.Router does: a *messages.Rejection reply comes back as
// the error; cluster.ErrTimeout means no answer arrived before ctx's
// deadline and the command may still have taken effect. Safe for concurrent
// use.
type Router interface {
	Request(ctx context.Context, kind, identity string, msg proto.Message) (proto.Message, error)
}
