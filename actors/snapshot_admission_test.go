package actors

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/concert/ticketing/actors/actortest"
	"github.com/concert/ticketing/cluster"
)

// capturingModel is a counterModel that counts its snapshot captures, and
// panics in the next one when panicNext is set.
type capturingModel struct {
	counterModel
	captures  atomic.Int64
	panicNext atomic.Bool
}

func (m *capturingModel) Snapshot() proto.Message {
	m.captures.Add(1)
	if m.panicNext.Swap(false) {
		panic("a bug in a model's capture")
	}
	return m.counterModel.Snapshot()
}

// snapshotRace is two counter actors, "a" and "b", on a journal with one
// snapshot writer, held (HoldSnapshots) so that a's save keeps it while b
// comes due.
type snapshotRace struct {
	j      *actortest.MemJournal
	local  *cluster.Local
	models map[string]*capturingModel
	slots  *Admission // the actors' snapshot admission, nil for none
}

func newSnapshotRace(t *testing.T, every int, slots *Admission) *snapshotRace {
	r := &snapshotRace{
		j:      actortest.NewMemJournalWith(actortest.MemOptions{SnapshotWriters: 1}),
		models: map[string]*capturingModel{"a": {}, "b": {}},
		slots:  slots,
	}
	var started atomic.Int64
	system := actor.NewActorSystem(actor.WithLoggerFactory(seatQuietLoggerFactory))
	r.local = cluster.NewLocal(system, map[string]cluster.Producer{
		"counter": func(identity string) actor.Actor {
			m := r.models[identity]
			a := &counterActor{model: &m.counterModel, started: &started}
			a.j = NewJournaled(JournaledOptions{ID: "counter/" + identity, Journal: r.j, Model: m,
				SnapshotEvery: every, SnapshotAdmission: slots, Logger: seatQuietLogger()})
			return a
		},
	})
	t.Cleanup(func() { r.j.ReleaseSnapshots(); r.local.Stop(); system.Shutdown() })
	r.j.HoldSnapshots()
	return r
}

func (r *snapshotRace) add(t *testing.T, identity string, n int) {
	t.Helper()
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := r.local.Request(ctx, "counter", identity, wrapperspb.Int64(1))
		cancel()
		require.NoError(t, err)
	}
}

// aHoldsTheWriter makes a's snapshot due and waits until its save holds
// the journal's one snapshot writer.
func (r *snapshotRace) aHoldsTheWriter(t *testing.T, every int) {
	t.Helper()
	r.add(t, "a", every)
	require.Eventually(t, func() bool { return r.j.HeldSnapshots() == 1 }, 5*time.Second, time.Millisecond,
		"a's snapshot save never started")
}

// TestSnapshotWaitsForAWriterBeforeCapturing: with the node's snapshot
// admission, an actor whose snapshot is due while another's save holds the
// journal's writers captures nothing (a capture is O(state); it was
// captured, encoded and refused busy at every write), and takes its
// snapshot once a writer is free.
func TestSnapshotWaitsForAWriterBeforeCapturing(t *testing.T) {
	const every = 10
	r := newSnapshotRace(t, every, NewAdmission(1))
	r.aHoldsTheWriter(t, every)
	r.add(t, "b", 10*every)
	require.Zero(t, r.models["b"].captures.Load(), "b captured snapshots no writer could save")

	r.j.ReleaseSnapshots()
	// The slot is free once a's save goroutine gave it back, a moment
	// after the journal let the save through.
	require.Eventually(t, func() bool { return r.slots.InUse() == 0 }, 5*time.Second, time.Millisecond)
	require.EqualValues(t, 1, r.models["a"].captures.Load())
	// b's next write makes it try again; on a busy machine its last
	// write's completion may already have, once the slot was free, so the
	// snapshot is of event 100 or 101 (either is the one snapshot due).
	r.add(t, "b", 1)
	require.Eventually(t, func() bool {
		s, ok, err := r.j.LoadSnapshot(context.Background(), "counter/b")
		return err == nil && ok && s.Seq >= 10*every
	}, 5*time.Second, time.Millisecond, "b's snapshot was not saved once the writer was free")
	require.EqualValues(t, 1, r.models["b"].captures.Load())
}

// TestRefusedSnapshotIsNotRetriedAtEveryWrite: without an admission (or
// with one larger than the journal's writers), a snapshot the journal
// refused busy is tried again only after a quarter of the interval's
// events, not at every write.
func TestRefusedSnapshotIsNotRetriedAtEveryWrite(t *testing.T) {
	const every, writes = 40, 400
	r := newSnapshotRace(t, every, nil)
	r.aHoldsTheWriter(t, every)
	r.add(t, "b", writes)
	// Due at event 40, then every 10 events: 37 captures; at every write
	// it was 361.
	got := r.models["b"].captures.Load()
	require.Positive(t, got, "b never tried to snapshot")
	require.LessOrEqual(t, got, int64((writes-every)/(every/4)+1), "refused captures were repeated")
}

// TestSnapshotCapturePanicGivesTheSlotBack: a capture that panics (a bug in
// a model; Guard replaces the actor) does not keep its snapshot slot, or two
// such panics would stop every snapshot of the node.
func TestSnapshotCapturePanicGivesTheSlotBack(t *testing.T) {
	r := newSnapshotRace(t, 1, NewAdmission(1))
	r.j.ReleaseSnapshots()
	r.models["a"].panicNext.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = r.local.Request(ctx, "counter", "a", wrapperspb.Int64(1)) // answered or not: the capture panics
	require.Eventually(t, func() bool { return r.models["a"].captures.Load() == 1 }, 5*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return r.slots.InUse() == 0 }, 5*time.Second, time.Millisecond,
		"the panicking capture kept its snapshot slot")
	r.add(t, "b", 1)
	require.Eventually(t, func() bool {
		_, ok, err := r.j.LoadSnapshot(context.Background(), "counter/b")
		return err == nil && ok
	}, 5*time.Second, time.Millisecond, "no snapshot once a capture had panicked")
}
