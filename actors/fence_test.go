package actors

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/cluster"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
	"github.com/concert/ticketing/persistence/pgtest"
)

// TestDuplicateActivationNeverDoubleBooks runs two "nodes" (two actor
// systems, each with its own placement) on one PostgreSQL journal, as a
// cluster with a stale member list would: both activate the seat actor of the
// same date. Both race for every seat; the journal's fence must let exactly
// one reservation per seat through, and a fenced incarnation must stop
// serving and be replaced by one that sees the other's writes.
func TestDuplicateActivationNeverDoubleBooks(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	pool := pgtest.NewDatabase(t)
	catalog := persistence.NewCatalog(pool)
	ctx := context.Background()
	_, options, err := catalog.CreateConcert(ctx, "fence", []time.Time{time.Now().UTC().AddDate(0, 1, 0)}, 10, stPrice)
	if err != nil {
		t.Fatal(err)
	}
	option := options[0].ID
	seats, err := catalog.Seats(ctx, option)
	if err != nil {
		t.Fatal(err)
	}

	node := func(name string) *cluster.Local {
		journal := persistence.NewJournal(pool, persistence.JournalOptions{WriterID: name})
		t.Cleanup(journal.Close)
		late := &seatLateRouter{}
		system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return seatQuietLogger() }))
		l := cluster.NewLocal(system, map[string]cluster.Producer{
			"seat": NewSeatProducer(SeatConfig{Journal: journal, Catalog: catalog, Router: late,
				HoldTTL: time.Hour, HoldLimit: 100, Logger: seatQuietLogger()}),
			"wallet": NewWalletProducer(WalletConfig{Journal: journal, HoldLimit: 100, Logger: seatQuietLogger()}),
		})
		late.r.Store(l)
		t.Cleanup(func() { l.Stop(); system.Shutdown() })
		return l
	}
	nodes := []*cluster.Local{node("node-a"), node("node-b")}
	request := func(l *cluster.Local, msg proto.Message) (proto.Message, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return l.Request(ctx, "seat", strconv.FormatInt(option, 10), msg)
	}
	// Both nodes activate the date's seat actor before anyone holds.
	for _, n := range nodes {
		if _, err := request(n, &messages.GetAvailability{}); err != nil {
			t.Fatal(err)
		}
	}

	type win struct {
		seat, reservation int64
	}
	var mu sync.Mutex
	var wins []win
	fenced := 0
	begin := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-begin
			seat := seats[i%len(seats)].ID
			res, err := request(nodes[i%2], &messages.HoldSeat{UserId: int64(i + 1), SeatId: seat})
			mu.Lock()
			defer mu.Unlock()
			var rej *messages.Rejection
			switch {
			case err == nil:
				wins = append(wins, win{seat, res.(*messages.ReservationResult).GetReservation().GetId()})
			case errors.As(err, &rej) && rej.GetCode() == messages.CodeStoreUnavailable:
				fenced++ // the fenced incarnation refusing its pending requests
			case errors.As(err, &rej) && rej.GetCode() == messages.CodeSeatUnavailable:
			default:
				t.Errorf("hold: %v", err)
			}
		}(i)
	}
	close(begin)
	wg.Wait()

	perSeat := map[int64]int{}
	for _, w := range wins {
		perSeat[w.seat]++
	}
	for seat, n := range perSeat {
		if n > 1 {
			t.Errorf("seat %d held by %d reservations", seat, n)
		}
	}
	if len(wins) > len(seats) {
		t.Fatalf("%d holds granted for %d seats", len(wins), len(seats))
	}
	// Every granted hold is in the journal, whichever node granted it: a
	// fresh incarnation on either node sees all of them. Fresh nodes, not
	// the race's: an incarnation that wrote last before the other node's
	// successor wrote was never fenced, and still serves what it knew (a
	// request scheduled late on a busy machine reaches a node after its
	// incarnation was fenced, and the successor's holds land after the
	// other node's last write).
	for _, n := range []*cluster.Local{node("node-a2"), node("node-b2")} {
		for _, w := range wins {
			res, err := request(n, &messages.GetReservation{ReservationId: w.reservation})
			if err != nil {
				t.Fatalf("reservation %d after the race: %v", w.reservation, err)
			}
			if got := res.(*messages.ReservationResult).GetReservation(); got.GetSeatId() != w.seat || got.GetStatus() != messages.ReservationStatus_RESERVATION_HELD {
				t.Fatalf("reservation %d: %v", w.reservation, got)
			}
		}
	}
	t.Logf("%d holds granted, %d requests refused by a fenced incarnation", len(wins), fenced)
	// Both incarnations started from the same (empty) history and both
	// wrote, so whichever wrote second must have been fenced.
	if fenced == 0 {
		t.Fatal("no request was refused by a fenced incarnation")
	}
}
