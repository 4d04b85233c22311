package placement

import (
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
)

// grainMeta is one grain this member activated.
type grainMeta struct {
	id  *pcluster.ClusterIdentity
	pid *actor.PID
}

// placementActor spawns the grains this member owns, as its children, and
// forgets each when its Terminated arrives.
type placementActor struct {
	cluster *pcluster.Cluster
	actors  map[string]grainMeta // identity key (kind/identity) → grain
	byPID   map[string]string    // grain PID id → identity key: O(1) on Terminated
}

func newPlacementActor(c *pcluster.Cluster) *placementActor {
	return &placementActor{cluster: c, actors: map[string]grainMeta{}, byPID: map[string]string{}}
}

// Receive handles activations, terminations and topology changes.
func (p *placementActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Stopping:
		p.onStopping(ctx)
	case *actor.Terminated:
		p.onTerminated(ctx, msg)
	case *pcluster.ActivationRequest:
		p.onActivationRequest(ctx, msg)
	case *pcluster.ClusterTopology:
		p.onTopology(ctx, msg)
	case *actor.Started, *actor.Stopped, *actor.Restarting:
	default:
		ctx.Logger().Error("placement: unexpected message", slog.Any("message", msg), slog.Any("sender", ctx.Sender()))
	}
}

func (p *placementActor) onTerminated(ctx actor.Context, msg *actor.Terminated) {
	key, ok := p.byPID[msg.GetWho().GetId()]
	if !ok {
		// Not a grain of ours (or already forgotten): nothing to undo.
		ctx.Logger().Debug("placement: Terminated of an unknown PID", slog.Any("pid", msg.GetWho()))
		return
	}
	delete(p.byPID, msg.Who.Id)
	meta := p.actors[key]
	delete(p.actors, key)
	if k, ok := p.cluster.TryGetClusterKind(meta.id.Kind); ok {
		k.Dec()
	}
	p.cluster.MemberList.BroadcastEvent(&pcluster.ActivationTerminated{Pid: msg.Who, ClusterIdentity: meta.id}, true)
}

func (p *placementActor) onStopping(ctx actor.Context) {
	futures := make(map[string]*actor.Future, len(p.actors))
	for key, meta := range p.actors {
		futures[key] = ctx.PoisonFuture(meta.pid)
	}
	for key, f := range futures {
		if err := f.Wait(); err != nil {
			ctx.Logger().Error("placement: grain did not stop", slog.String("identity", key), slog.Any("error", err))
		}
	}
}

func (p *placementActor) onActivationRequest(ctx actor.Context, msg *pcluster.ActivationRequest) {
	key := msg.ClusterIdentity.AsKey()
	if meta, ok := p.actors[key]; ok {
		ctx.Respond(&pcluster.ActivationResponse{Pid: meta.pid})
		return
	}
	kind, ok := p.cluster.TryGetClusterKind(msg.ClusterIdentity.Kind)
	if !ok {
		ctx.Logger().Error("placement: unknown kind", slog.String("kind", msg.ClusterIdentity.Kind))
		ctx.Respond(nil) // the caller's future fails: no PID
		return
	}
	pid := ctx.SpawnPrefix(pcluster.WithClusterIdentity(kind.Props, msg.ClusterIdentity), msg.ClusterIdentity.Identity)
	kind.Inc()
	p.actors[key] = grainMeta{id: msg.ClusterIdentity, pid: pid}
	p.byPID[pid.Id] = key
	ctx.Respond(&pcluster.ActivationResponse{Pid: pid})
}

// onTopology stops, at once, every grain whose owner is now another member
// (as disthash does: no handover; cluster.Grains's hand-back and the
// journal's fence cover the move).
func (p *placementActor) onTopology(ctx actor.Context, msg *pcluster.ClusterTopology) {
	rdv := pcluster.NewRendezvous()
	rdv.UpdateMembers(msg.Members)
	me := p.cluster.ActorSystem.Address()
	for key, meta := range p.actors {
		if rdv.GetByIdentity(key) != me {
			ctx.Poison(meta.pid)
		}
	}
}
