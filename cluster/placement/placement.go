// Package placement is the cluster's identity lookup: which member a grain
// (kind, identity) lives on, and its activation there. Each member runs one
// placement actor that spawns the grains it owns by rendezvous hashing over
// the member list, and callers ask the owner's placement actor for the
// grain's PID.
//
// It is Proto.Actor's disthash (github.com/asynkron/protoactor-go, package
// cluster/identitylookup/disthash at v0.0.0-20240822202345-3c0e61ca19c9,
// Apache-2.0), with the same actor name and messages, so members running
// either interoperate, and one change: the placement actor finds the grain
// of a Terminated through an index by PID. disthash scanned every live
// grain for it, so n grains passivating together cost O(n²) on the one
// actor every activation also waits for: after an on-sale of 90,000 fans,
// their wallets going idle at once kept it busy for tens of seconds (62 %
// of the node's CPU in pidToMeta) and every new grain's activation timed
// out (README, Performance: "Passivation storms"). disthash also
// dereferenced a nil entry for a PID it did not know; this one ignores it.
package placement

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/eventstream"
)

// ActorName is the placement actor's name on every member; disthash's, so
// that members running either find each other's.
const ActorName = "partition-activator"

// activationTimeout bounds a caller's wait for the owner's answer; disthash's
// 5 s (the caller's own deadline is applied above this, by cluster.Grains).
const activationTimeout = 5 * time.Second

// Lookup is the cluster.IdentityLookup of this package; New makes one.
type Lookup struct {
	m *manager
}

// New returns a Lookup to pass to cluster.Configure.
func New() pcluster.IdentityLookup { return &Lookup{} }

// Get returns the PID of identity's grain, activating it on its owner if
// needed; nil if no member owns it or the owner did not answer within 5 s.
func (l *Lookup) Get(identity *pcluster.ClusterIdentity) *actor.PID {
	return l.m.get(identity)
}

// RemovePid tells every member that pid, identity's grain, is gone.
func (l *Lookup) RemovePid(identity *pcluster.ClusterIdentity, pid *actor.PID) {
	l.m.cluster.MemberList.BroadcastEvent(&pcluster.ActivationTerminated{Pid: pid, ClusterIdentity: identity}, true)
}

// Setup starts this member's placement actor and follows the topology.
func (l *Lookup) Setup(c *pcluster.Cluster, _ []string, _ bool) {
	l.m = &manager{cluster: c}
	l.m.rdv.Store(pcluster.NewRendezvous())
	l.m.start()
}

// Shutdown stops the placement actor, which stops every grain of this
// member first.
func (l *Lookup) Shutdown() { l.m.stop() }

// manager keeps the rendezvous of the current topology and this member's
// placement actor.
type manager struct {
	cluster     *pcluster.Cluster
	topologySub *eventstream.Subscription
	placement   *actor.PID
	// rdv is the rendezvous of the latest topology: replaced, never
	// changed, by the event stream's goroutine, and read by callers'
	// (disthash used a plain field, a data race).
	rdv atomic.Pointer[pcluster.Rendezvous]
}

func (m *manager) start() {
	system := m.cluster.ActorSystem
	props := actor.PropsFromProducer(func() actor.Actor { return newPlacementActor(m.cluster) })
	m.placement, _ = system.Root.SpawnNamed(props, ActorName)
	m.topologySub = system.EventStream.Subscribe(func(ev any) {
		if t, ok := ev.(*pcluster.ClusterTopology); ok {
			m.onTopology(t)
		}
	})
}

func (m *manager) stop() {
	system := m.cluster.ActorSystem
	system.EventStream.Unsubscribe(m.topologySub)
	if err := system.Root.PoisonFuture(m.placement).Wait(); err != nil {
		m.cluster.Logger().Error("placement actor did not stop", slog.Any("error", err))
	}
}

func (m *manager) onTopology(t *pcluster.ClusterTopology) {
	m.cluster.Logger().Info("placement: topology", slog.Uint64("topology-hash", t.TopologyHash), slog.Int("members", len(t.Members)))
	rdv := pcluster.NewRendezvous()
	rdv.UpdateMembers(t.Members)
	m.rdv.Store(rdv)
	m.cluster.ActorSystem.Root.Send(m.placement, t)
}

func (m *manager) get(identity *pcluster.ClusterIdentity) *actor.PID {
	owner := m.rdv.Load().GetByClusterIdentity(identity)
	if owner == "" {
		return nil
	}
	f := m.cluster.ActorSystem.Root.RequestFuture(actor.NewPID(owner, ActorName),
		&pcluster.ActivationRequest{ClusterIdentity: identity}, activationTimeout)
	res, err := f.Result()
	if err != nil {
		return nil
	}
	r, ok := res.(*pcluster.ActivationResponse)
	if !ok {
		return nil
	}
	return r.Pid
}
