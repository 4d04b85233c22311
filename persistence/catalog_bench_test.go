package persistence_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/concert/ticketing/persistence"
	"github.com/concert/ticketing/persistence/pgtest"
)

// BenchmarkCreateLargeVenue creates a concert of 366 dates × 1,000 seats
// (366,000 seats) in one call, on a catalog that already holds 0 and then
// about 1.1 million seats, and reports the seconds per venue: it must stay
// in seconds whatever the catalog holds.
//
//	go test -run '^$' -bench CreateLargeVenue -benchtime=1x ./persistence/
func BenchmarkCreateLargeVenue(b *testing.B) {
	url := pgtest.NewDatabaseURL(b)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	if err := persistence.Migrate(ctx, pool); err != nil {
		b.Fatal(err)
	}
	cat := persistence.NewCatalog(pool)
	dates := make([]time.Time, 366)
	for i := range dates {
		dates[i] = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i)
	}
	for _, before := range []int{0, 3} {
		b.Run(fmt.Sprintf("venues-before=%d", before), func(b *testing.B) {
			for range b.N {
				for v := range before {
					if _, _, err := cat.CreateConcert(ctx, fmt.Sprintf("filler-%d", v), dates, 1000, 100); err != nil {
						b.Fatal(err)
					}
				}
				start := time.Now()
				if _, _, err := cat.CreateConcert(ctx, "venue", dates, 1000, 100); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(time.Since(start).Seconds(), "s/venue")
			}
		})
	}
}
