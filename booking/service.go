// Package booking is the application service behind the HTTP API: it checks
// queue tokens, reads the catalog, and runs one API call across the actors
// (a hold then the user's hold slot; an idempotency look-up, then the payment
// saga, then the token's expiry). It holds no state of its own beyond caches
// of immutable catalog facts.
package booking

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/concert/ticketing/persistence"
)

// Actor kinds and the identity of the one queue manager.
const (
	kindSeat   = "seat"
	kindWallet = "wallet"
	kindQueue  = "queue"
	queueID    = "main"
)

// DefaultRequestTimeout bounds one API call when Config.RequestTimeout is zero.
const DefaultRequestTimeout = 5 * time.Second

// cacheSize bounds each cache of immutable catalog facts.
const cacheSize = 100_000

// seatCacheSize bounds the cache of seats by id: enough for a sale of a
// few large venues at once (a concert may have 366 dates × 1,000 seats).
// An entry holds no pointer, so the collector never scans the map; full,
// it is about 60 MB.
const seatCacheSize = 1_000_000

// Config holds what a Service needs.
type Config struct {
	Catalog Catalog
	Router  Router
	Tokens  Tokens
	// RequestTimeout bounds every API call, actor requests included.
	RequestTimeout time.Duration
	Logger         *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Service runs the API calls. It is safe for concurrent use.
type Service struct {
	catalog Catalog
	router  Router
	tokens  Tokens
	timeout time.Duration
	log     *slog.Logger
	now     func() time.Time

	users     *cache[int64, struct{}]                    // ids of users known to exist
	seats     *cache[int64, persistence.Seat]            // seat id → seat
	options   *cache[int64, persistence.ConcertOption]   // option id → option
	concerts  *cache[int64, []persistence.ConcertOption] // concert id → its options
	seatList  *cache[int64, map[int64]persistence.Seat]  // option id → its seats by id
	seatLoads singleflight.Group                         // one seat listing per date at a time
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{
		catalog:  cfg.Catalog,
		router:   cfg.Router,
		tokens:   cfg.Tokens,
		timeout:  cfg.RequestTimeout,
		log:      cfg.Logger,
		now:      cfg.Now,
		users:    newCache[int64, struct{}](cacheSize),
		seats:    newCache[int64, persistence.Seat](seatCacheSize),
		options:  newCache[int64, persistence.ConcertOption](cacheSize),
		concerts: newCache[int64, []persistence.ConcertOption](cacheSize),
		seatList: newCache[int64, map[int64]persistence.Seat](cacheSize / 100),
	}
}

// QueueSizes reports how many tokens wait in line and how many are active.
func (s *Service) QueueSizes() (waiting, active int) {
	return s.tokens.Waiting(), s.tokens.Active()
}

// bound derives the deadline of one API call from the caller's context.
func (s *Service) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// detached is a context for a compensating or follow-up step that must run
// even if the caller's request has just ended.
func (s *Service) detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
}

// settle runs a compensating or follow-up step on a detached context (it
// completes even if the request ends) and waits for it only while the
// request's own context allows: an answer never waits past the request's
// deadline for it — the step then finishes in the background.
func (s *Service) settle(ctx context.Context, step func(context.Context)) {
	done := make(chan struct{})
	dctx, cancel := s.detached(ctx)
	go func() {
		defer close(done)
		defer cancel()
		step(dctx)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func id(n int64) string { return strconv.FormatInt(n, 10) }
