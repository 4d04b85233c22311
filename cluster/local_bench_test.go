package cluster_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/concert/ticketing/cluster"
)

// BenchmarkPlacementHop measures what the manager actor in front of every
// actor of a kind costs a request (issue 8: "the manager actor per kind is
// a serial hop for every message of that kind; measure it against direct
// placement"). local: Local.Request, which goes through the kind's manager
// only until the child's route is published (routes.go); direct: a future
// straight to the same actor's PID. Parallel callers spread over 64
// identities, as HTTP handlers do.
func BenchmarkPlacementHop(b *testing.B) {
	const identities = 64
	system := actor.NewActorSystem()
	l := cluster.NewLocal(system, map[string]cluster.Producer{
		"echo": func(string) actor.Actor { return echo{} },
	})
	b.Cleanup(func() { l.Stop(); system.Shutdown() })
	pids := make([]*actor.PID, identities)
	for i := range pids {
		pids[i] = system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return echo{} }))
	}
	b.Run("local", func(b *testing.B) {
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			for pb.Next() {
				id := strconv.FormatInt(next.Add(1)%identities, 10)
				if _, err := l.Request(ctx, "echo", id, wrapperspb.Int64(1)); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("direct", func(b *testing.B) {
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				pid := pids[next.Add(1)%identities]
				if _, err := system.Root.RequestFuture(pid, wrapperspb.Int64(1), 5*time.Second).Result(); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// echo answers every Int64Value with itself.
type echo struct{}

func (echo) Receive(ctx actor.Context) {
	if m, ok := ctx.Message().(*wrapperspb.Int64Value); ok {
		ctx.Respond(m)
	}
}
