package persistence

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// User is a registered user.
type User struct {
	ID        int64
	Name      string
	CreatedAt time.Time
}

// Concert is a show with one price for all its seats.
type Concert struct {
	ID        int64
	Title     string
	Price     int64
	CreatedAt time.Time
}

// ConcertOption is one date of a concert with its own seats.
type ConcertOption struct {
	ID, ConcertID int64
	Date          time.Time // UTC midnight of the concert's calendar date
	Seats         int       // number of seats, numbered 1..Seats
}

// Seat is one seat of a concert option.
type Seat struct {
	ID, OptionID, ConcertID int64
	SeatNo                  int
	Price                   int64
}

// Catalog reads and writes the read-mostly tables: users, concerts, concert
// options (dates) and seats. Seat availability is not here: it is the
// actors' state, kept in the journal. Errors from a store that cannot be
// reached wrap ErrUnavailable; missing rows are ErrNotFound. Safe for
// concurrent use.
type Catalog struct {
	pool *pgxpool.Pool
}

// NewCatalog returns a Catalog on pool.
func NewCatalog(pool *pgxpool.Pool) *Catalog {
	return &Catalog{pool: pool}
}

// Ping checks that the store answers.
func (c *Catalog) Ping(ctx context.Context) error {
	if err := c.pool.Ping(ctx); err != nil {
		return fmt.Errorf("catalog ping: %w", classify(err))
	}
	return nil
}

// CreateUser registers a user named name.
func (c *Catalog) CreateUser(ctx context.Context, name string) (User, error) {
	u := User{Name: name}
	err := c.pool.QueryRow(ctx,
		`INSERT INTO users (name) VALUES ($1) RETURNING id, created_at`, name).Scan(&u.ID, &u.CreatedAt)
	if err != nil {
		return User{}, fmt.Errorf("catalog create user: %w", classify(err))
	}
	u.CreatedAt = u.CreatedAt.UTC()
	return u, nil
}

// User returns the user with id, or ErrNotFound.
func (c *Catalog) User(ctx context.Context, id int64) (User, error) {
	u := User{ID: id}
	err := c.pool.QueryRow(ctx, `SELECT name, created_at FROM users WHERE id = $1`, id).Scan(&u.Name, &u.CreatedAt)
	if err != nil {
		return User{}, fmt.Errorf("catalog user %d: %w", id, notFound(err))
	}
	u.CreatedAt = u.CreatedAt.UTC()
	return u, nil
}

// Concerts returns all concerts ordered by id.
func (c *Catalog) Concerts(ctx context.Context) ([]Concert, error) {
	rows, err := c.pool.Query(ctx, `SELECT id, title, price, created_at FROM concerts ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("catalog concerts: %w", classify(err))
	}
	out := []Concert{}
	var k Concert
	_, err = pgx.ForEachRow(rows, []any{&k.ID, &k.Title, &k.Price, &k.CreatedAt}, func() error {
		k.CreatedAt = k.CreatedAt.UTC()
		out = append(out, k)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalog concerts: %w", classify(err))
	}
	return out, nil
}

// Concert returns the concert with id, or ErrNotFound.
func (c *Catalog) Concert(ctx context.Context, id int64) (Concert, error) {
	k := Concert{ID: id}
	err := c.pool.QueryRow(ctx, `SELECT title, price, created_at FROM concerts WHERE id = $1`, id).
		Scan(&k.Title, &k.Price, &k.CreatedAt)
	if err != nil {
		return Concert{}, fmt.Errorf("catalog concert %d: %w", id, notFound(err))
	}
	k.CreatedAt = k.CreatedAt.UTC()
	return k, nil
}

// Options returns the dates of a concert ordered by date. An unknown
// concert has none (an empty slice, not ErrNotFound).
func (c *Catalog) Options(ctx context.Context, concertID int64) ([]ConcertOption, error) {
	rows, err := c.pool.Query(ctx, `SELECT id, concert_id, concert_date, seats FROM concert_options
WHERE concert_id = $1 ORDER BY concert_date, id`, concertID)
	if err != nil {
		return nil, fmt.Errorf("catalog options of concert %d: %w", concertID, classify(err))
	}
	out := []ConcertOption{}
	var o ConcertOption
	_, err = pgx.ForEachRow(rows, []any{&o.ID, &o.ConcertID, &o.Date, &o.Seats}, func() error {
		o.Date = utcDate(o.Date)
		out = append(out, o)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalog options of concert %d: %w", concertID, classify(err))
	}
	return out, nil
}

// Option returns the concert option with optionID, or ErrNotFound.
func (c *Catalog) Option(ctx context.Context, optionID int64) (ConcertOption, error) {
	o := ConcertOption{ID: optionID}
	err := c.pool.QueryRow(ctx, `SELECT concert_id, concert_date, seats FROM concert_options WHERE id = $1`, optionID).
		Scan(&o.ConcertID, &o.Date, &o.Seats)
	if err != nil {
		return ConcertOption{}, fmt.Errorf("catalog option %d: %w", optionID, notFound(err))
	}
	o.Date = utcDate(o.Date)
	return o, nil
}

// Seats returns the seats of a concert option ordered by seat number. An
// unknown option has none (an empty slice, not ErrNotFound).
func (c *Catalog) Seats(ctx context.Context, optionID int64) ([]Seat, error) {
	rows, err := c.pool.Query(ctx, `SELECT id, option_id, concert_id, seat_no, price FROM seats
WHERE option_id = $1 ORDER BY seat_no`, optionID)
	if err != nil {
		return nil, fmt.Errorf("catalog seats of option %d: %w", optionID, classify(err))
	}
	out := []Seat{}
	var s Seat
	_, err = pgx.ForEachRow(rows, []any{&s.ID, &s.OptionID, &s.ConcertID, &s.SeatNo, &s.Price}, func() error {
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalog seats of option %d: %w", optionID, classify(err))
	}
	return out, nil
}

// Seat returns the seat with seatID, or ErrNotFound.
func (c *Catalog) Seat(ctx context.Context, seatID int64) (Seat, error) {
	s := Seat{ID: seatID}
	err := c.pool.QueryRow(ctx, `SELECT option_id, concert_id, seat_no, price FROM seats WHERE id = $1`, seatID).
		Scan(&s.OptionID, &s.ConcertID, &s.SeatNo, &s.Price)
	if err != nil {
		return Seat{}, fmt.Errorf("catalog seat %d: %w", seatID, notFound(err))
	}
	return s, nil
}

// CreateConcert inserts a concert, one option per date and seatsPerDate
// seats numbered 1..seatsPerDate per option, all at price, in one
// transaction. A date counts by its calendar day in its own location
// (2024-10-10 00:00 KST is 2024-10-10); the options are returned ordered by
// date. Duplicate dates, a negative price or seatsPerDate are rejected.
func (c *Catalog) CreateConcert(ctx context.Context, title string, dates []time.Time, seatsPerDate int, price int64) (Concert, []ConcertOption, error) {
	if price < 0 || seatsPerDate < 0 {
		return Concert{}, nil, fmt.Errorf("catalog create concert: negative price or seats")
	}
	days := make([]time.Time, len(dates))
	seen := make(map[time.Time]bool, len(dates))
	for i, d := range dates {
		day := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC)
		if seen[day] {
			return Concert{}, nil, fmt.Errorf("catalog create concert: duplicate date %s", day.Format(time.DateOnly))
		}
		seen[day] = true
		days[i] = day
	}

	var (
		k    = Concert{Title: title, Price: price}
		opts []ConcertOption
	)
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO concerts (title, price) VALUES ($1, $2) RETURNING id, created_at`,
			title, price).Scan(&k.ID, &k.CreatedAt)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `INSERT INTO concert_options (concert_id, concert_date, seats)
SELECT $1, d, $3 FROM unnest($2::date[]) AS d
RETURNING id, concert_date`, k.ID, days, seatsPerDate)
		if err != nil {
			return err
		}
		var o ConcertOption
		_, err = pgx.ForEachRow(rows, []any{&o.ID, &o.Date}, func() error {
			opts = append(opts, ConcertOption{ID: o.ID, ConcertID: k.ID, Date: utcDate(o.Date), Seats: seatsPerDate})
			return nil
		})
		if err != nil {
			return err
		}
		ids := make([]int64, len(opts))
		for i, o := range opts {
			ids[i] = o.ID
		}
		_, err = tx.Exec(ctx, `INSERT INTO seats (option_id, concert_id, seat_no, price)
SELECT o, $2, n, $3 FROM unnest($1::bigint[]) AS o, generate_series(1, $4::int) AS n`,
			ids, k.ID, price, seatsPerDate)
		return err
	})
	if err != nil {
		return Concert{}, nil, fmt.Errorf("catalog create concert %q: %w", title, classify(err))
	}
	k.CreatedAt = k.CreatedAt.UTC()
	slices.SortFunc(opts, func(a, b ConcertOption) int { return a.Date.Compare(b.Date) })
	return k, opts, nil
}

// utcDate normalises a scanned date column to UTC midnight.
func utcDate(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// notFound maps pgx.ErrNoRows to ErrNotFound and classifies other errors.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	return classify(err)
}
