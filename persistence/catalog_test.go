package persistence_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/concert/ticketing/persistence"
	"github.com/concert/ticketing/persistence/pgtest"
)

func TestCatalog(t *testing.T) {
	pool := pgtest.NewDatabase(t)
	c := persistence.NewCatalog(pool)
	ctx := ctxT(t)

	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}

	u, err := c.CreateUser(ctx, "Kim")
	if err != nil || u.ID <= 0 || u.Name != "Kim" || time.Since(u.CreatedAt) > time.Minute {
		t.Fatalf("create user: %+v %v", u, err)
	}
	if got, err := c.User(ctx, u.ID); err != nil || got != u {
		t.Fatalf("user = %+v %v, want %+v", got, err, u)
	}
	if _, err := c.User(ctx, u.ID+100); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("missing user: %v", err)
	}

	if ks, err := c.Concerts(ctx); err != nil || len(ks) != 0 {
		t.Fatalf("concerts of empty catalog: %v %v", ks, err)
	}
	kst := time.FixedZone("KST", 9*3600)
	dates := []time.Time{
		time.Date(2024, 10, 12, 0, 0, 0, 0, kst), // counts as 2024-10-12, not 10-11 UTC
		time.Date(2024, 10, 10, 15, 4, 5, 0, time.UTC),
	}
	k, opts, err := c.CreateConcert(ctx, "Concert", dates, 50, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if k.ID <= 0 || k.Title != "Concert" || k.Price != 1000 {
		t.Fatalf("concert %+v", k)
	}
	wantDates := []time.Time{time.Date(2024, 10, 10, 0, 0, 0, 0, time.UTC), time.Date(2024, 10, 12, 0, 0, 0, 0, time.UTC)}
	if len(opts) != 2 {
		t.Fatalf("options %+v", opts)
	}
	for i, o := range opts {
		if !o.Date.Equal(wantDates[i]) || o.Date.Location() != time.UTC || o.ConcertID != k.ID || o.Seats != 50 {
			t.Fatalf("option %d = %+v", i, o)
		}
	}
	if got, err := c.Concert(ctx, k.ID); err != nil || got != k {
		t.Fatalf("concert = %+v %v, want %+v", got, err, k)
	}
	if _, err := c.Concert(ctx, k.ID+1); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("missing concert: %v", err)
	}
	k2, _, err := c.CreateConcert(ctx, "Second", wantDates[:1], 3, 500)
	if err != nil {
		t.Fatal(err)
	}
	if ks, err := c.Concerts(ctx); err != nil || len(ks) != 2 || ks[0] != k || ks[1] != k2 {
		t.Fatalf("concerts = %+v %v", ks, err)
	}

	gotOpts, err := c.Options(ctx, k.ID)
	if err != nil || len(gotOpts) != 2 || gotOpts[0] != opts[0] || gotOpts[1] != opts[1] {
		t.Fatalf("options = %+v %v, want %+v", gotOpts, err, opts)
	}
	if o, err := c.Option(ctx, opts[1].ID); err != nil || o != opts[1] {
		t.Fatalf("option = %+v %v", o, err)
	}
	if _, err := c.Option(ctx, 99999); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("missing option: %v", err)
	}
	if o, err := c.Options(ctx, 99999); err != nil || len(o) != 0 {
		t.Fatalf("options of missing concert: %v %v", o, err)
	}

	seats, err := c.Seats(ctx, opts[0].ID)
	if err != nil || len(seats) != 50 {
		t.Fatalf("seats: %d %v", len(seats), err)
	}
	for i, s := range seats {
		if s.SeatNo != i+1 || s.OptionID != opts[0].ID || s.ConcertID != k.ID || s.Price != 1000 {
			t.Fatalf("seat %d = %+v", i, s)
		}
	}
	if s, err := c.Seat(ctx, seats[17].ID); err != nil || s != seats[17] {
		t.Fatalf("seat = %+v %v", s, err)
	}
	if _, err := c.Seat(ctx, 1<<40); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("missing seat: %v", err)
	}

	if _, _, err := c.CreateConcert(ctx, "Dup", []time.Time{wantDates[0], wantDates[0]}, 1, 1); err == nil {
		t.Fatal("duplicate dates accepted")
	}
	if ks, _ := c.Concerts(ctx); len(ks) != 2 {
		t.Fatalf("a rejected concert was stored: %+v", ks)
	}
}

func TestMigrateTwiceAndConcurrently(t *testing.T) {
	url := pgtest.NewEmptyDatabaseURL(t)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx := ctxT(t)

	// Two processes starting at once: both succeed, one applies.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := pgxpool.New(ctx, url)
			if err != nil {
				errs[i] = err
				return
			}
			defer p.Close()
			errs[i] = persistence.Migrate(ctx, p)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("concurrent migrate: %v", err)
		}
	}
	if err := persistence.Migrate(ctx, pool); err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	var version int
	var dirty bool
	if err := pool.QueryRow(ctx, `SELECT version, dirty FROM schema_migrations`).Scan(&version, &dirty); err != nil || version != 3 || dirty {
		t.Fatalf("schema_migrations: %d %v %v", version, dirty, err)
	}
	// The pool is still usable (Migrate must not close it).
	if err := persistence.NewCatalog(pool).Ping(ctx); err != nil {
		t.Fatal(err)
	}
}
