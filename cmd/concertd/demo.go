package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/node"
)

// demoConcerts are created on the first start with -demo; later starts find
// concerts already there and leave the data alone.
var demoConcerts = []struct {
	title string
	price int64
}{
	{"IU Golden Hour", 1000},
	{"BTS Yet To Come", 5000},
	{"NewJeans Bunnies Camp", 3000},
}

const (
	demoUsers      = 5
	demoDates      = 3
	demoSeats      = 50
	demoUserPoints = 100_000
)

// loadDemo creates a few concerts with dates and seats and a few users with
// points, unless the catalog already has concerts.
func loadDemo(ctx context.Context, n *node.Node) error {
	catalog := n.Catalog()
	existing, err := catalog.Concerts(ctx)
	if err != nil {
		return err
	}
	if len(existing) > 0 {
		return nil
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	for i, c := range demoConcerts {
		dates := make([]time.Time, demoDates)
		for d := range dates {
			dates[d] = today.AddDate(0, 0, 7*(i+1)+d)
		}
		if _, _, err := catalog.CreateConcert(ctx, c.title, dates, demoSeats, c.price); err != nil {
			return fmt.Errorf("concert %q: %w", c.title, err)
		}
	}
	for i := 1; i <= demoUsers; i++ {
		u, err := catalog.CreateUser(ctx, fmt.Sprintf("fan-%d", i))
		if err != nil {
			return fmt.Errorf("user %d: %w", i, err)
		}
		_, err = n.Router().Request(ctx, "wallet", strconv.FormatInt(u.ID, 10),
			&messages.ChargePoints{UserId: u.ID, Amount: demoUserPoints})
		if err != nil {
			return fmt.Errorf("points for user %d: %w", u.ID, err)
		}
	}
	return nil
}
