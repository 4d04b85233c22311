package actors

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// seatBenchCatalog is a catalog of n seats of price 100 for option 1.
func seatBenchCatalog(n int) *seatCatalog {
	seats := make([]persistence.Seat, n)
	for i := range seats {
		seats[i] = persistence.Seat{ID: int64(i + 1), OptionID: 1, ConcertID: 1, SeatNo: i + 1, Price: 100}
	}
	return newSeatCatalog(persistence.ConcertOption{ID: 1, ConcertID: 1}, seats)
}

// BenchmarkSeatSnapshotAfterCycles prints the snapshot size and the time
// to recover one date (decode the snapshot, restore, replay the events
// since) after 1k, 10k and 100k hold/cancel cycles on one seat, with a
// snapshot (and archive) every 500 events as Journaled takes them. Flat is
// right: the state holds live holds and sold seats, not history.
func BenchmarkSeatSnapshotAfterCycles(b *testing.B) {
	for _, cycles := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("cycles=%d", cycles), func(b *testing.B) {
			cat := seatBenchCatalog(50)
			now := time.UnixMilli(1_700_000_000_000)
			s := newSeatState(1)
			var since []proto.Message // events after the last snapshot
			var snap []byte
			apply := func(e proto.Message) {
				s.Apply(e)
				since = append(since, e)
				if len(since) >= 500 {
					var err error
					if snap, err = proto.Marshal(s.Snapshot()); err != nil {
						b.Fatal(err)
					}
					closed := s.Closed()
					keys := make([]int64, len(closed))
					for i, c := range closed {
						keys[i] = c.Key
					}
					s.Forget(keys)
					since = since[:0]
				}
			}
			for i := range cycles {
				ev, rej := decideHold(s, cat, &messages.HoldSeat{UserId: int64(i%7 + 1), SeatId: 1}, now, time.Minute, 0)
				if rej != nil {
					b.Fatal(rej)
				}
				apply(ev)
				apply(&messages.HoldCancelled{ReservationId: ev.ReservationId, AtMs: now.UnixMilli()})
			}
			b.ResetTimer()
			for range b.N {
				var m messages.SeatSnapshot
				if err := proto.Unmarshal(snap, &m); err != nil {
					b.Fatal(err)
				}
				r := newSeatState(1)
				if err := r.Restore(&m); err != nil {
					b.Fatal(err)
				}
				for _, e := range since {
					r.Apply(e)
				}
			}
			b.ReportMetric(float64(len(snap)), "snapshot-bytes")
			b.ReportMetric(float64(len(s.reservations)), "reservations-in-memory")
		})
	}
}

// BenchmarkSeatHoldWithLiveHolds measures one hold decision, its apply and
// the due-expiry check every command makes, with 10, 1,000 and 100,000 live
// holds on the date: the cost must not grow with them (the deadline heap
// makes the expiry check O(1) when nothing is due).
func BenchmarkSeatHoldWithLiveHolds(b *testing.B) {
	for _, live := range []int{10, 1_000, 100_000} {
		b.Run(fmt.Sprintf("live=%d", live), func(b *testing.B) {
			cat := seatBenchCatalog(live + b.N + 1)
			now := time.UnixMilli(1_700_000_000_000)
			s := newSeatState(1)
			for i := range live {
				ev, rej := decideHold(s, cat, &messages.HoldSeat{UserId: int64(i + 1), SeatId: int64(i + 1)}, now, time.Minute, 0)
				if rej != nil {
					b.Fatal(rej)
				}
				s.Apply(ev)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if due := dueExpiries(s, now); len(due) != 0 {
					b.Fatal("nothing should be due")
				}
				ev, rej := decideHold(s, cat, &messages.HoldSeat{UserId: int64(live + i + 1), SeatId: int64(live + i + 1)}, now, time.Minute, 0)
				if rej != nil {
					b.Fatal(rej)
				}
				s.Apply(ev)
				_, _ = s.NextDue()
			}
		})
	}
}
