package actors

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/actors/actortest"
	"github.com/concert/ticketing/cluster"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
	"github.com/concert/ticketing/persistence/pgtest"
)

// fencePlacement is a node's view of the cluster, set by the test: its
// topology version and whether it has settled (cluster.Placement).
type fencePlacement struct {
	mu      sync.Mutex
	version uint64
	settled bool
	waiters []func()
}

func (p *fencePlacement) Settled() (uint64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.version, p.settled
}

func (p *fencePlacement) WhenSettled(v uint64, fn func()) {
	p.mu.Lock()
	if p.version != v || p.settled {
		p.mu.Unlock()
		go fn()
		return
	}
	p.waiters = append(p.waiters, fn)
	p.mu.Unlock()
}

func (p *fencePlacement) Owned() bool { return true }

// change moves the node to a new topology, settled or not.
func (p *fencePlacement) change(settled bool) {
	p.mu.Lock()
	p.version++
	p.settled = settled
	fns := p.waiters
	p.waiters = nil
	p.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

func (p *fencePlacement) settle() {
	p.mu.Lock()
	p.settled = true
	fns := p.waiters
	p.waiters = nil
	p.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// waiting reports how many WhenSettled calls wait: a copy calls it when it
// holds a message on an unsettled topology.
func (p *fencePlacement) waiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiters)
}

// fenceCountingJournal counts LastSeq calls (the read fence's queries).
type fenceCountingJournal struct {
	Journal
	lastSeq atomic.Int32
}

func (c *fenceCountingJournal) LastSeq(ctx context.Context, actorID string) (int64, error) {
	c.lastSeq.Add(1)
	return c.Journal.LastSeq(ctx, actorID)
}

// fenceNode is one "node": its own actor system and placement of wallets
// (cluster.Local with a Placement) on the shared journal, or of another
// kind (newFenceNodeOf).
type fenceNode struct {
	local *cluster.Local
	place *fencePlacement
	made  atomic.Int32 // incarnations
}

func newFenceNode(t *testing.T, journal Journal, settled bool) *fenceNode {
	t.Helper()
	system := actor.NewActorSystem(actor.WithLoggerFactory(seatQuietLoggerFactory))
	return newFenceNodeOf(t, system, settled, "wallet",
		NewWalletProducer(WalletConfig{Journal: journal, IdleTTL: -1, Logger: seatQuietLogger()}))
}

// newFenceNodeOf is a fenceNode placing the actors of one kind, made by
// produce, in system.
func newFenceNodeOf(t *testing.T, system *actor.ActorSystem, settled bool, kind string, produce cluster.Producer) *fenceNode {
	t.Helper()
	n := &fenceNode{place: &fencePlacement{version: 1, settled: settled}}
	n.local = cluster.NewLocal(system, map[string]cluster.Producer{
		kind: func(identity string) actor.Actor { n.made.Add(1); return produce(identity) },
	}, cluster.WithPlacement(func(string, string) cluster.Placement { return n.place }))
	t.Cleanup(func() { n.local.Stop(); system.Shutdown() })
	return n
}

type fenceAnswer struct {
	res proto.Message
	err error
}

func (n *fenceNode) askAsync(msg proto.Message) <-chan fenceAnswer {
	ch := make(chan fenceAnswer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := n.local.Request(ctx, "wallet", "1", msg)
		ch <- fenceAnswer{res, err}
	}()
	return ch
}

func (n *fenceNode) balance(t *testing.T, msg proto.Message) int64 {
	t.Helper()
	return fenceBalance(t, <-n.askAsync(msg))
}

func fenceBalance(t *testing.T, a fenceAnswer) int64 {
	t.Helper()
	if a.err != nil {
		t.Fatalf("wallet: %v", a.err)
	}
	return a.res.(*messages.WalletResult).GetBalance()
}

func charge(amount int64) *messages.ChargePoints {
	return &messages.ChargePoints{UserId: 1, Amount: amount}
}

// readFenceScenarios run against any journal (MemJournal, PostgreSQL).
func readFenceScenarios(t *testing.T, open func(t *testing.T) Journal) {
	// Two incarnations of wallet/1 on one journal. B's recovered while its
	// node's topology was unsettled (a node had just joined or left) and
	// has not written since; A then writes and acknowledges. Asked to read
	// (and to write), B must not answer from what it recovered: it holds
	// the requests until the topology settles, confirms with the journal,
	// finds A's write and breaks down; its successor answers them.
	t.Run("StaleCopyDoesNotAnswer", func(t *testing.T) {
		journal := &fenceCountingJournal{Journal: open(t)}
		a := newFenceNode(t, journal, true)
		b := newFenceNode(t, journal, false)
		if got := a.balance(t, charge(100)); got != 100 {
			t.Fatalf("A's charge: balance %d", got)
		}
		read := b.askAsync(&messages.GetBalance{UserId: 1})
		actortest.Eventually(t, 10*time.Second, func() bool { return b.place.waiting() > 0 }, "B's copy never held the read")
		write := b.askAsync(charge(10))
		if got := a.balance(t, charge(50)); got != 150 {
			t.Fatalf("A's second charge: balance %d", got)
		}
		select {
		case ans := <-read:
			t.Fatalf("B answered before its topology settled: %v %v", ans.res, ans.err)
		default:
		}
		if n := journal.lastSeq.Load(); n != 0 {
			t.Fatalf("%d queries before the topology settled", n)
		}
		b.place.settle()
		// The read and B's charge are concurrent (neither had its answer
		// when the other was sent), so either may take effect first: the
		// read sees A's charge (150), or A's and B's (160) when B's charge
		// reached the copy after it stopped and went straight to its
		// successor (seen once under load). Never what B recovered (100)
		// nor a charge on top of it (110).
		readBalance := fenceBalance(t, <-read)
		if readBalance != 150 && readBalance != 160 {
			t.Fatalf("B's read after A's acknowledged charge: balance %d, want 150 (or 160 after B's own charge)", readBalance)
		}
		if got := fenceBalance(t, <-write); got != 160 {
			t.Fatalf("B's charge: balance %d, want 160", got)
		}
		if made := b.made.Load(); made != 2 {
			t.Fatalf("B made %d incarnations, want 2 (the stale one broke down)", made)
		}
		if n := journal.lastSeq.Load(); n != 1 {
			t.Fatalf("%d fence queries, want 1", n)
		}
		// A's copy is fenced by the journal at its next write; B's
		// successor, recovered on a settled topology, reads at no cost.
		for range 50 {
			if got := b.balance(t, &messages.GetBalance{UserId: 1}); got != 160 {
				t.Fatalf("B's balance %d, want 160", got)
			}
		}
		if n := journal.lastSeq.Load(); n != 1 {
			t.Fatalf("%d fence queries after 50 reads of a sure copy, want 1", n)
		}
		if _, err := a.local.Request(context.Background(), "wallet", "1", charge(1)); !isUnavailable(err) {
			t.Fatalf("A's write over B's: %v, want STORE_UNAVAILABLE (fenced)", err)
		}
	})

	// With no other writer, one query confirms every message held, and the
	// copy answers at no cost from then on — even after later topology
	// changes: once sure, a copy stays sure for its life (another copy can
	// only serve once a topology in which this node does not own it has
	// settled, and that stops this one first).
	t.Run("OneQueryServesAllHeld", func(t *testing.T) {
		journal := &fenceCountingJournal{Journal: open(t)}
		a := newFenceNode(t, journal, true)
		if got := a.balance(t, charge(100)); got != 100 {
			t.Fatalf("charge: %d", got)
		}
		b := newFenceNode(t, journal, false)
		var reads []<-chan fenceAnswer
		reads = append(reads, b.askAsync(&messages.GetBalance{UserId: 1}))
		actortest.Eventually(t, 10*time.Second, func() bool { return b.place.waiting() > 0 }, "B's copy never held the read")
		for range 19 {
			reads = append(reads, b.askAsync(&messages.GetBalance{UserId: 1}))
		}
		b.place.settle()
		for _, r := range reads {
			if got := fenceBalance(t, <-r); got != 100 {
				t.Fatalf("held read: %d", got)
			}
		}
		// Requests that arrived after the query started wait for another:
		// at most two queries for twenty reads.
		if n := journal.lastSeq.Load(); n < 1 || n > 2 {
			t.Fatalf("%d fence queries for 20 held reads, want 1 or 2", n)
		}
		before := journal.lastSeq.Load()
		b.place.change(false) // a later topology change, unsettled
		a.place.change(false)
		for range 20 {
			if got := b.balance(t, &messages.GetBalance{UserId: 1}); got != 100 {
				t.Fatalf("read: %d", got)
			}
			if got := a.balance(t, &messages.GetBalance{UserId: 1}); got != 100 {
				t.Fatalf("read: %d", got)
			}
		}
		if n := journal.lastSeq.Load(); n != before {
			t.Fatalf("sure copies queried %d times after a topology change", n-before)
		}
		if made := b.made.Load(); made != 1 {
			t.Fatalf("B made %d incarnations, want 1", made)
		}
	})

	// Steady state: a copy activated on a settled topology never queries.
	t.Run("SettledCopyNeverQueries", func(t *testing.T) {
		journal := &fenceCountingJournal{Journal: open(t)}
		a := newFenceNode(t, journal, true)
		for i := range 50 {
			if got := a.balance(t, charge(1)); got != int64(i+1) {
				t.Fatalf("charge %d: %d", i, got)
			}
			a.balance(t, &messages.GetBalance{UserId: 1})
		}
		if n := journal.lastSeq.Load(); n != 0 {
			t.Fatalf("%d fence queries in steady state", n)
		}
	})
}

func isUnavailable(err error) bool {
	var rej *messages.Rejection
	return errors.As(err, &rej) && rej.GetCode() == messages.CodeStoreUnavailable
}

func TestReadFenceMemJournal(t *testing.T) {
	readFenceScenarios(t, func(*testing.T) Journal { return actortest.NewMemJournal() })
}

func TestReadFencePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	readFenceScenarios(t, func(t *testing.T) Journal {
		j := persistence.NewJournal(pgtest.NewDatabase(t), persistence.JournalOptions{})
		t.Cleanup(j.Close)
		return j
	})
}
