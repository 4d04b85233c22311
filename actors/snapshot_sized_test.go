package actors

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/concert/ticketing/actors/actortest"
	"github.com/concert/ticketing/cluster"
)

// sizedCounter is the counter model claiming a snapshot of size records.
type sizedCounter struct {
	*counterModel
	size int
}

func (m sizedCounter) SnapshotSize() int { return m.size }

// TestSnapshotIntervalGrowsWithState: a model whose snapshot holds 100
// records is snapshotted after 50 events, not after SnapshotEvery (10), so
// a large state is not captured and encoded again every few events.
func TestSnapshotIntervalGrowsWithState(t *testing.T) {
	j := actortest.NewMemJournal()
	system := actor.NewActorSystem(actor.WithLoggerFactory(seatQuietLoggerFactory))
	var started atomic.Int64
	local := cluster.NewLocal(system, map[string]cluster.Producer{
		"counter": func(identity string) actor.Actor {
			m := &counterModel{}
			a := &counterActor{model: m, started: &started}
			a.j = NewJournaled(JournaledOptions{ID: "counter/" + identity, Journal: j,
				Model: sizedCounter{counterModel: m, size: 100}, SnapshotEvery: 10, Logger: seatQuietLogger()})
			return a
		},
	})
	t.Cleanup(func() { local.Stop(); system.Shutdown() })
	snapshotSeq := func() int64 {
		s, ok, err := j.LoadSnapshot(context.Background(), "counter/a")
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return 0
		}
		return s.Seq
	}
	for range 49 {
		if _, err := addTo(local, "a", 1); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond) // a snapshot, had one been started, is saved by now
	if seq := snapshotSeq(); seq != 0 {
		t.Fatalf("snapshot at seq %d, before half the model's size in events", seq)
	}
	for range 2 {
		if _, err := addTo(local, "a", 1); err != nil {
			t.Fatal(err)
		}
	}
	actortest.Eventually(t, 5*time.Second, func() bool { return snapshotSeq() >= 50 }, "a snapshot after 50 events")
}
