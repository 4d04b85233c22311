package actors

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/cluster"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
	"github.com/concert/ticketing/persistence/pgtest"
)

// TestSeatOnPostgres runs the seat actor on the real journal and catalog: a
// race for one seat, a payment, and a restart that recovers both.
func TestSeatOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	pool := pgtest.NewDatabase(t)
	journal := persistence.NewJournal(pool, persistence.JournalOptions{})
	t.Cleanup(journal.Close)
	catalog := persistence.NewCatalog(pool)
	ctx := context.Background()
	date := time.Now().UTC().AddDate(0, 1, 0)
	_, options, err := catalog.CreateConcert(ctx, "pg", []time.Time{date}, 50, stPrice)
	if err != nil {
		t.Fatal(err)
	}
	option := options[0].ID
	seats, err := catalog.Seats(ctx, option)
	if err != nil || len(seats) != 50 {
		t.Fatalf("seats %v %v", seats, err)
	}

	start := func() *cluster.Local {
		late := &seatLateRouter{}
		system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return seatQuietLogger() }))
		l := cluster.NewLocal(system, map[string]cluster.Producer{
			"seat": NewSeatProducer(SeatConfig{Journal: journal, Catalog: catalog, Router: late,
				HoldTTL: time.Hour, HoldLimit: 4, SnapshotEvery: 5, Logger: seatQuietLogger()}),
			"wallet": NewWalletProducer(WalletConfig{Journal: journal, Logger: seatQuietLogger()}),
		})
		late.r.Store(l)
		return l
	}
	request := func(l *cluster.Local, kind string, id int64, msg proto.Message) (proto.Message, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return l.Request(ctx, kind, strconv.FormatInt(id, 10), msg)
	}
	l := start()
	if _, err := request(l, "wallet", 1, &messages.ChargePoints{UserId: 1, Amount: 5000}); err != nil {
		t.Fatal(err)
	}

	// 200 users race for the first seat.
	begin := make(chan struct{})
	var wg sync.WaitGroup
	var won atomic.Int64
	var winner atomic.Int64
	for u := int64(1); u <= 200; u++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-begin
			res, err := request(l, "seat", option, &messages.HoldSeat{UserId: u, SeatId: seats[0].ID})
			if err == nil {
				won.Add(1)
				winner.Store(res.(*messages.ReservationResult).GetReservation().GetId())
			} else if seatCode(err) != messages.CodeSeatUnavailable {
				t.Errorf("hold: %v", err)
			}
		}()
	}
	close(begin)
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d winners", won.Load())
	}
	first := winner.Load()

	// User 1 holds and pays the second seat, and holds the third.
	res, err := request(l, "seat", option, &messages.HoldSeat{UserId: 1, SeatId: seats[1].ID})
	if err != nil {
		t.Fatal(err)
	}
	paidID := res.(*messages.ReservationResult).GetReservation().GetId()
	res, err = request(l, "seat", option, &messages.PayReservation{ReservationId: paidID, UserId: 1, Amount: stPrice, IdempotencyKey: "pg"})
	if err != nil {
		t.Fatal(err)
	}
	paid := res.(*messages.ReservationResult).GetReservation()
	if paid.GetStatus() != messages.ReservationStatus_RESERVATION_CONFIRMED || paid.GetBalanceAfter() != 4000 ||
		paid.GetConcertId() != options[0].ConcertID {
		t.Fatalf("paid %v", paid)
	}
	if _, err := request(l, "seat", option, &messages.HoldSeat{UserId: 1, SeatId: seats[2].ID}); err != nil {
		t.Fatal(err)
	}
	l.Stop()

	// A new node recovers it all from PostgreSQL.
	l = start()
	t.Cleanup(l.Stop)
	for id, want := range map[int64]messages.ReservationStatus{
		first:  messages.ReservationStatus_RESERVATION_HELD,
		paidID: messages.ReservationStatus_RESERVATION_CONFIRMED,
	} {
		res, err := request(l, "seat", option, &messages.GetReservation{ReservationId: id})
		if err != nil || res.(*messages.ReservationResult).GetReservation().GetStatus() != want {
			t.Fatalf("reservation %d after restart: %v %v, want %v", id, res, err, want)
		}
	}
	res, err = request(l, "seat", option, &messages.GetAvailability{})
	if err != nil || len(res.(*messages.SeatAvailability).GetFreeSeatIds()) != 47 {
		t.Fatalf("availability after restart %v %v", res, err)
	}
	res, err = request(l, "wallet", 1, &messages.GetBalance{UserId: 1})
	if err != nil || res.(*messages.WalletResult).GetBalance() != 4000 {
		t.Fatalf("balance after restart %v %v", res, err)
	}
	_, err = request(l, "seat", option, &messages.HoldSeat{UserId: 2, SeatId: seats[1].ID})
	wantCode(t, err, messages.CodeSeatUnavailable)
	if s := replaySeat(t, journal, option); len(s.reservations) != 3 || len(s.live) != 2 {
		t.Fatalf("journal holds %d reservations, %d live", len(s.reservations), len(s.live))
	}
}
