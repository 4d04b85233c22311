package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/concert/ticketing/cluster/placement"
)

// stormWait bounds the wait for a storm's grains to be forgotten: far more
// than a busy 2-core machine needs, only reached on a failure.
const stormWait = time.Minute

// activate asks this member's placement actor for the grain (kind, id),
// past the cluster's PID cache, and returns its PID.
func activate(t testing.TB, g *Grains, kind, id string) *actor.PID {
	t.Helper()
	f := g.c.ActorSystem.Root.RequestFuture(actor.NewPID(g.c.ActorSystem.Address(), placement.ActorName),
		&pcluster.ActivationRequest{ClusterIdentity: pcluster.NewClusterIdentity(id, kind)}, 30*time.Second)
	res, err := f.Result()
	if err != nil {
		t.Fatalf("activate %s/%s: %v", kind, id, err)
	}
	r, ok := res.(*pcluster.ActivationResponse)
	if !ok || r.GetPid() == nil {
		t.Fatalf("activate %s/%s: answer %v", kind, id, res)
	}
	return r.Pid
}

// activateAll activates n live grains of kind ("<prefix>-0" …).
func activateAll(t testing.TB, g *Grains, kind, prefix string, n int) []*actor.PID {
	t.Helper()
	pids := make([]*actor.PID, n)
	for i := range pids {
		pids[i] = activate(t, g, kind, fmt.Sprintf("%s-%d", prefix, i))
	}
	return pids
}

// awaitActivations waits until the placement actor knows want grains of
// kind (its count goes down only when it finds a terminated grain).
func awaitActivations(t testing.TB, g *Grains, kind string, want int32) {
	t.Helper()
	deadline := time.Now().Add(stormWait)
	for g.c.GetClusterKind(kind).Count() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d %s grains known %v after the storm, want %d", g.c.GetClusterKind(kind).Count(), kind, stormWait, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPlacementForgetsAStorm: 2,000 live grains stopped at once are all
// forgotten by the placement actor, and each is activated anew afterwards.
func TestPlacementForgetsAStorm(t *testing.T) {
	g := startTestGrains(t)
	base := g.c.GetClusterKind("f").Count()
	// Identities of this run only: the grains are shared by the package's
	// tests and by every -count repetition.
	prefix := fmt.Sprintf("storm%d", time.Now().UnixNano())
	pids := activateAll(t, g, "f", prefix, 2000)
	awaitActivations(t, g, "f", base+2000)
	for _, pid := range pids {
		g.c.ActorSystem.Root.Poison(pid)
	}
	awaitActivations(t, g, "f", base)
	if again := activate(t, g, "f", prefix+"-7"); again.Equal(pids[7]) {
		t.Fatalf("%s-7 answered by its stopped PID %v", prefix, again)
	}
}

// TestPlacementIgnoresAnUnknownTermination: a Terminated for a PID the
// placement actor never spawned changes nothing. (disthash dereferenced a
// nil entry there; the placement actor restarted with an empty map, so a
// live grain was activated a second time.)
func TestPlacementIgnoresAnUnknownTermination(t *testing.T) {
	g := startTestGrains(t)
	before := activate(t, g, "f", "kept")
	g.c.ActorSystem.Root.Send(actor.NewPID(g.c.ActorSystem.Address(), placement.ActorName),
		&actor.Terminated{Who: actor.NewPID(g.c.ActorSystem.Address(), "never-spawned")})
	if after := activate(t, g, "f", "kept"); !after.Equal(before) {
		t.Fatalf("the live grain %v was activated again as %v: the placement actor lost it", before, after)
	}
}

// BenchmarkPlacementStorm: the cost per grain of stopping n live grains at
// once, until the placement actor has forgotten them all. Flat in n here;
// disthash's scan of every live grain per Terminated made it grow with n.
func BenchmarkPlacementStorm(b *testing.B) {
	g := startTestGrains(b)
	base := g.c.GetClusterKind("f").Count()
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("grains=%d", n), func(b *testing.B) {
			for i := range b.N {
				b.StopTimer()
				pids := activateAll(b, g, "f", fmt.Sprintf("bench-%d-%d", n, i), n)
				b.StartTimer()
				for _, pid := range pids {
					g.c.ActorSystem.Root.Poison(pid)
				}
				awaitActivations(b, g, "f", base)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/grain")
		})
	}
}
