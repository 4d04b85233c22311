package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// SetupConfig describes the fixture Setup creates.
type SetupConfig struct {
	Title        string // concert title; default "concertbench <time>"
	Dates        int    // D concert dates, from 30 days ahead
	SeatsPerDate int    // S seats per date
	Price        int64  // seat price in won; default 1000
	Users        int    // U users, each charged and given an ACTIVE token
	// Charge is added to each user's wallet; default 10×Price. 0 or less
	// with NoCharge skips the charge.
	Charge   int64
	NoCharge bool
	// NoToken skips the queue tokens: the users are only registered.
	NoToken bool
	// Concurrency is the number of setup requests in flight; default 64.
	Concurrency int
	// TokenWait bounds the wait for every token to become ACTIVE; default
	// 20s.
	TokenWait time.Duration
	// OnProgress, if set, is called as users are created.
	OnProgress func(Progress)
}

// Fixture is what Setup created.
type Fixture struct {
	ConcertID int64
	Price     int64
	Dates     []Date
	Users     []User
}

// Date is one concert date and its seats.
type Date struct {
	OptionID int64
	Day      string // YYYY-MM-DD
	Seats    []Seat
}

// Seat is one seat of a date.
type Seat struct {
	ID    int64
	No    int
	Price int64
}

// User is one user with an ACTIVE queue token.
type User struct {
	ID    int64
	Token string
	auth  []byte // "Bearer <token>"
}

// Progress is a snapshot handed to OnProgress callbacks.
type Progress struct {
	Phase   string // "setup", "tokens", "holds", "hot"
	Done    int64  // users set up; holds made; seats sold
	Total   int64  // users; 0 (time-bound run); seats
	Errors  int64
	Elapsed time.Duration
	// Duration is the planned length of a time-bound phase (Total 0).
	Duration time.Duration
}

// ErrTokensNotActive is returned by Setup when the server keeps some of the
// fixture's tokens waiting: it admits fewer ACTIVE tokens than the run has
// users.
var ErrTokensNotActive = errors.New("queue tokens not ACTIVE")

// Setup creates the fixture through the API: the concert (admin key
// needed), the users, their points and their tokens, and waits until every
// token is ACTIVE.
func Setup(ctx context.Context, c *Client, cfg SetupConfig) (*Fixture, error) {
	if cfg.Dates < 0 || (cfg.Dates > 0 && cfg.SeatsPerDate <= 0) || cfg.Users < 0 {
		return nil, errors.New("setup: dates, seats and users must be positive")
	}
	if cfg.Price <= 0 {
		cfg.Price = 1000
	}
	if cfg.Charge <= 0 {
		cfg.Charge = 10 * cfg.Price
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if cfg.TokenWait <= 0 {
		cfg.TokenWait = 20 * time.Second
	}
	if cfg.Title == "" {
		cfg.Title = "concertbench " + time.Now().UTC().Format(time.RFC3339Nano)
	}
	start := time.Now()
	progress := func(phase string, done, total int64) {
		if cfg.OnProgress != nil {
			cfg.OnProgress(Progress{Phase: phase, Done: done, Total: total, Elapsed: time.Since(start)})
		}
	}

	fx := &Fixture{Price: cfg.Price}
	if cfg.Dates > 0 {
		var err error
		if fx, err = createConcert(ctx, c, cfg); err != nil {
			return nil, err
		}
	}

	fx.Users = make([]User, cfg.Users)
	var done atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.Concurrency)
	for i := range fx.Users {
		g.Go(func() error {
			u, err := createUser(gctx, c, cfg, i)
			if err != nil {
				return err
			}
			fx.Users[i] = u
			if n := done.Add(1); n%100 == 0 || n == int64(cfg.Users) {
				progress("setup", n, int64(cfg.Users))
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		var w *waitedError
		if errors.As(err, &w) {
			return nil, fmt.Errorf("setup: %w: the server put a token of this run in line (position %d) when %d of its %d users "+
				"had theirs: it admits fewer ACTIVE tokens than this run needs. Start the server with ACTIVE_TOKENS of at least %d "+
				"plus the tokens earlier runs left ACTIVE — they stay so until TOKEN_IDLE_TTL passes without use, also across "+
				"restarts (GET /metrics: queue_active) — or wait, or start on an empty database",
				ErrTokensNotActive, w.position, done.Load(), cfg.Users, cfg.Users)
		}
		return nil, fmt.Errorf("setup: %w", err)
	}
	if cfg.NoToken {
		return fx, nil
	}
	if err := waitActive(ctx, c, cfg, fx.Users, progress); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	for i := range fx.Users {
		fx.Users[i].auth = []byte("Bearer " + fx.Users[i].Token)
	}
	return fx, nil
}

// waitedError is a token issued WAIT during the set-up.
type waitedError struct{ position int64 }

func (e *waitedError) Error() string {
	return fmt.Sprintf("token issued WAIT at position %d", e.position)
}

type tokenObject struct {
	UserID   int64  `json:"userId"`
	Token    string `json:"token"`
	Status   string `json:"status"`
	Position int64  `json:"position"`
}

func createConcert(ctx context.Context, c *Client, cfg SetupConfig) (*Fixture, error) {
	first := time.Now().UTC().AddDate(0, 0, 30)
	days := make([]string, cfg.Dates)
	for i := range days {
		days[i] = first.AddDate(0, 0, i).Format(time.DateOnly)
	}
	var created struct {
		ID    int64 `json:"id"`
		Price int64 `json:"price"`
		Dates []struct {
			ConcertOptionID int64  `json:"concertOptionId"`
			ConcertDate     string `json:"concertDate"`
		} `json:"dates"`
	}
	in := map[string]any{"title": cfg.Title, "dates": days, "seatsPerDate": cfg.SeatsPerDate, "price": cfg.Price}
	err := c.call(ctx, "POST", "/admin/concerts", "", map[string]string{"X-Admin-Key": c.adminKey}, in, &created, 201)
	if err != nil {
		return nil, fmt.Errorf("setup: create concert: %w", err)
	}
	if len(created.Dates) != cfg.Dates {
		return nil, fmt.Errorf("setup: create concert: asked for %d dates, got %d", cfg.Dates, len(created.Dates))
	}
	fx := &Fixture{ConcertID: created.ID, Price: created.Price, Dates: make([]Date, cfg.Dates)}
	if fx.Price == 0 {
		fx.Price = cfg.Price
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.Concurrency)
	for i, d := range created.Dates {
		g.Go(func() error {
			day := d.ConcertDate
			if len(day) > 10 {
				day = day[:10]
			}
			seats, err := availableSeats(gctx, c, fx.ConcertID, day)
			if err != nil {
				return err
			}
			if len(seats) != cfg.SeatsPerDate {
				return fmt.Errorf("date %s: asked for %d seats, %d are free", day, cfg.SeatsPerDate, len(seats))
			}
			fx.Dates[i] = Date{OptionID: d.ConcertOptionID, Day: day, Seats: seats}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("setup: seats: %w", err)
	}
	return fx, nil
}

// availableSeats lists the free seats of one date.
func availableSeats(ctx context.Context, c *Client, concertID int64, day string) ([]Seat, error) {
	var out []struct {
		Seats []struct {
			SeatID int64 `json:"seatId"`
			SeatNo int   `json:"seatNo"`
			Price  int64 `json:"price"`
		} `json:"seats"`
	}
	path := "/concerts/" + strconv.FormatInt(concertID, 10) + "/available-seats?date=" + url.QueryEscape(day)
	if err := c.call(ctx, "GET", path, "", nil, nil, &out, 200); err != nil {
		return nil, err
	}
	var seats []Seat
	for _, o := range out {
		for _, s := range o.Seats {
			seats = append(seats, Seat{ID: s.SeatID, No: s.SeatNo, Price: s.Price})
		}
	}
	return seats, nil
}

func createUser(ctx context.Context, c *Client, cfg SetupConfig, i int) (User, error) {
	var u struct {
		ID int64 `json:"id"`
	}
	if err := c.call(ctx, "POST", "/users", "", nil, map[string]any{"name": "bench-" + strconv.Itoa(i)}, &u, 201); err != nil {
		return User{}, fmt.Errorf("create user %d: %w", i, err)
	}
	if !cfg.NoCharge {
		if err := c.callAs(ctx, u.ID, "PATCH", "/customers/point", "", nil,
			map[string]any{"userId": u.ID, "chargeBalance": cfg.Charge}, nil, 200); err != nil {
			return User{}, fmt.Errorf("charge user %d: %w", u.ID, err)
		}
	}
	if cfg.NoToken {
		return User{ID: u.ID}, nil
	}
	var tok tokenObject
	if err := c.callAs(ctx, u.ID, "POST", "/users/token", "", nil, map[string]any{"userId": u.ID}, &tok, 200); err != nil {
		return User{}, fmt.Errorf("token of user %d: %w", u.ID, err)
	}
	if tok.Token == "" {
		return User{}, fmt.Errorf("token of user %d: empty token", u.ID)
	}
	if tok.Status == "WAIT" {
		// The server is out of ACTIVE slots: issuing more tokens would
		// only lengthen a line that stays until WAIT_IDLE_TTL.
		return User{}, &waitedError{position: tok.Position}
	}
	return User{ID: u.ID, Token: tok.Token}, nil
}

// waitActive polls GET /users/token for every user until each token is
// ACTIVE, failing after cfg.TokenWait with a message that says why.
func waitActive(ctx context.Context, c *Client, cfg SetupConfig, users []User, progress func(string, int64, int64)) error {
	deadline := time.Now().Add(cfg.TokenWait)
	pending := make([]int, len(users))
	for i := range pending {
		pending[i] = i
	}
	var (
		mu          sync.Mutex
		maxPosition int64
		waiting     int
	)
	for round := 0; ; round++ {
		var still []int
		maxPosition, waiting = 0, 0
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(cfg.Concurrency)
		for _, i := range pending {
			g.Go(func() error {
				var tok tokenObject
				if err := c.callAs(gctx, users[i].ID, "GET", "/users/token", users[i].Token, nil, nil, &tok, 200); err != nil {
					return fmt.Errorf("token of user %d: %w", users[i].ID, err)
				}
				if tok.Status == "ACTIVE" {
					return nil
				}
				if tok.Status != "WAIT" {
					return fmt.Errorf("token of user %d is %s", users[i].ID, tok.Status)
				}
				mu.Lock()
				still = append(still, i)
				waiting++
				maxPosition = max(maxPosition, tok.Position)
				mu.Unlock()
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		progress("tokens", int64(len(users)-len(still)), int64(len(users)))
		if len(still) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %d of %d tokens still WAIT after %s (last in line at position %d): "+
				"the server needs ACTIVE_TOKENS >= %d plus the tokens earlier runs left ACTIVE, which stay so until "+
				"TOKEN_IDLE_TTL passes without use (a restart keeps them): raise ACTIVE_TOKENS, wait, or start on an empty database",
				ErrTokensNotActive, waiting, len(users), cfg.TokenWait, maxPosition, len(users))
		}
		pending = still
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(100*time.Millisecond*time.Duration(round+1), time.Second)):
		}
	}
}
