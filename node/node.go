// Package node builds one running node of the service from its settings: the
// PostgreSQL pool and migrations, the journal and catalog, the actor system
// with the seat, wallet and queue kinds, the booking service and the HTTP app.
// cmd/concertd and the end-to-end tests start nodes the same way.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/protobuf/proto"

	"github.com/concert/ticketing/actors"
	"github.com/concert/ticketing/booking"
	"github.com/concert/ticketing/cluster"
	httpapi "github.com/concert/ticketing/http"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// Config holds everything a node needs. Zero values get the defaults of
// Defaults.
type Config struct {
	DatabaseURL    string
	AdminKey       string
	HoldTTL        time.Duration
	HoldLimit      int
	ActiveTokens   int
	TokenIdleTTL   time.Duration
	WaitIdleTTL    time.Duration
	ActorIdleTTL   time.Duration
	RequestTimeout time.Duration
	SnapshotEvery  int
	JournalWriters int
	DBMaxConns     int
	// IdempotencyRetention is how long idempotency keys and payment records
	// are kept by wallets (default 24 h).
	IdempotencyRetention time.Duration
	// ReminderInterval is how often durable reminders are scanned to wake
	// actors with open work (default 1 s).
	ReminderInterval time.Duration
	// JournalPrune deletes each actor's journal rows up to the snapshot its
	// latest one replaced (persistence.JournalOptions.PruneAfterSnapshot).
	JournalPrune bool
	// Per-client rate limits in requests per minute (0: none) of user
	// creation, token issue and token polling, and the reverse proxies
	// whose X-Forwarded-For names the client (httpapi.RateLimits).
	RateUsers, RateTokenIssue, RateTokenPoll int
	TrustedProxies                           []netip.Prefix
	// IdentityHeader turns on the trusted-identity mode (httpapi.Config).
	IdentityHeader string
	// Pprof serves the Go profiler at /debug/pprof/ (see http.Config.Pprof).
	Pprof bool
	// OpsPage serves the live operations page at /ops (http.Config.OpsPage).
	OpsPage bool
	// StreamInterval, StreamHeartbeat and StreamLimit configure the token
	// streams (http.StreamOptions: Interval, Heartbeat, Limit).
	StreamInterval  time.Duration
	StreamHeartbeat time.Duration
	StreamLimit     int
	NodeID          string
	Logger          *slog.Logger
	// Cluster places the actors: in this process (default) or as grains of
	// a Proto.Actor cluster (node/cluster.go).
	Cluster ClusterConfig
}

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	seti := func(i *int, v int) {
		if *i <= 0 {
			*i = v
		}
	}
	set(&c.HoldTTL, 5*time.Minute)
	set(&c.TokenIdleTTL, 10*time.Minute)
	set(&c.WaitIdleTTL, 5*time.Minute)
	set(&c.ActorIdleTTL, 2*time.Minute)
	set(&c.RequestTimeout, 5*time.Second)
	set(&c.IdempotencyRetention, 24*time.Hour)
	set(&c.ReminderInterval, time.Second)
	set(&c.StreamInterval, httpapi.DefaultStreamInterval)
	set(&c.StreamHeartbeat, httpapi.DefaultStreamHeartbeat)
	seti(&c.StreamLimit, httpapi.DefaultStreamLimit)
	seti(&c.HoldLimit, 4)
	seti(&c.ActiveTokens, 1000)
	seti(&c.SnapshotEvery, 500)
	seti(&c.JournalWriters, persistence.DefaultWriters)
	seti(&c.DBMaxConns, 16)
	if c.NodeID == "" {
		host, _ := os.Hostname()
		c.NodeID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Node is one running node.
type Node struct {
	cfg      Config
	pool     *pgxpool.Pool
	journal  *persistence.Journal
	catalog  *persistence.Catalog
	metered  *persistence.MeteredCatalog // catalog, its failures counted
	system   *actor.ActorSystem
	router   placement
	tokens   *actors.TokenTable
	feed     *actors.TokenFeed // nil unless clustered (node/cluster.go)
	booking  *booking.Service
	http     *httpapi.Server
	streams  *httpapi.Streams
	registry *prometheus.Registry

	stopReminders context.CancelFunc
	remindersDone chan struct{}
}

// writeAdmission is the most actors with a journal write queued at once
// (2,048): half the journal's smallest default queue, so an admitted write
// is never refused there, whatever that queue becomes. It was 1,000: a
// sold-out with 1,000 fans in flight has up to 1,000 wallets and its dates'
// seat actors writing at once, and 2 of 10 runs had 9 and 10 holds refused
// for it (actor_overload_refusals_total{kind="wallet",reason="admission"})
// with nothing overloaded.
const writeAdmission = persistence.DefaultMinQueueLen / 2

// snapshotWriters is both the journal's concurrent snapshot saves and the
// actors' snapshots in the making (captured, encoded or being saved) at
// once: with the two equal, no actor captures a snapshot the journal then
// refuses busy.
const snapshotWriters = persistence.DefaultSnapshotWriters

// Start connects to PostgreSQL, applies the migrations, starts the actors and
// builds the HTTP app. It returns once the queue manager has recovered.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	if cfg.DatabaseURL == "" {
		return nil, errors.New("start node: no database URL")
	}
	poolCfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("start node: database URL: %w", err)
	}
	poolCfg.MaxConns = int32(cfg.DBMaxConns)
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, fmt.Errorf("start node: connect: %w", err)
	}
	if err := persistence.Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("start node: %w", err)
	}

	n := &Node{cfg: cfg, pool: pool, registry: prometheus.NewRegistry()}
	n.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		persistence.NewPoolCollector(pool))
	n.journal = persistence.NewJournal(pool, persistence.JournalOptions{
		WriterID:           cfg.NodeID,
		Writers:            cfg.JournalWriters,
		PruneAfterSnapshot: cfg.JournalPrune,
		SnapshotWriters:    snapshotWriters,
		Registerer:         n.registry,
	})
	n.catalog = persistence.NewCatalog(pool)
	// What the actors and the service use is metered (store errors,
	// snapshots, business counters; see README, Metrics).
	store := persistence.NewStoreMetrics(n.registry)
	meteredJournal := store.Journal(n.journal)
	journal := actors.NewMetrics(n.registry).Observe(meteredJournal)
	catalog := store.Catalog(n.catalog)
	n.metered = catalog
	n.tokens = actors.NewTokenTable()
	n.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return cfg.Logger.With("lib", "protoactor")
	}))

	// Actors reach each other through the router, which needs the producers
	// first: they get a forwarder filled in once the router exists.
	late := newLateRouter()
	n.feed = n.newFeed(late)
	now := time.Now
	admission := actors.NewAdmission(writeAdmission)
	// As many snapshots in the making as the journal has writers for, so
	// none is captured only to be refused busy.
	snapshots := actors.NewAdmission(snapshotWriters)
	kinds := map[string]cluster.Producer{
		"seat": actors.NewSeatProducer(actors.SeatConfig{
			Journal: journal, Catalog: catalog, Router: late,
			HoldTTL: cfg.HoldTTL, HoldLimit: cfg.HoldLimit,
			SnapshotEvery: cfg.SnapshotEvery, IdleTTL: cfg.ActorIdleTTL,
			Admission: admission, SnapshotAdmission: snapshots, Now: now, Logger: cfg.Logger,
		}),
		"wallet": actors.NewWalletProducer(actors.WalletConfig{
			Journal: journal, HoldLimit: cfg.HoldLimit,
			SnapshotEvery: cfg.SnapshotEvery, IdleTTL: cfg.ActorIdleTTL,
			Retention: cfg.IdempotencyRetention,
			Admission: admission, SnapshotAdmission: snapshots, Now: now, Logger: cfg.Logger,
		}),
		"queue": actors.NewQueueProducer(actors.QueueConfig{
			Journal: journal, Tokens: n.tokens, ActiveTokens: cfg.ActiveTokens,
			TokenIdleTTL: cfg.TokenIdleTTL, WaitIdleTTL: cfg.WaitIdleTTL,
			SnapshotEvery: cfg.SnapshotEvery, SnapshotAdmission: snapshots, Now: now, Logger: cfg.Logger,
			Feed: n.feed,
		}),
	}
	if n.router, err = place(n.system, cfg.Cluster, kinds, n.registry, cfg.Logger); err != nil {
		n.Shutdown(context.Background())
		return nil, fmt.Errorf("start node: %w", err)
	}
	late.set(n.router)
	n.startFeed()

	// The queue manager runs its expiry timers only once activated: wake it
	// now, which also proves the journal is readable.
	if err := n.pingQueue(ctx); err != nil {
		n.Shutdown(context.Background())
		return nil, fmt.Errorf("start node: %w", err)
	}

	// Actors with open work (holds to expire, payments to settle) come back
	// by themselves, without waiting for a request.
	remindCtx, stop := context.WithCancel(context.Background())
	n.stopReminders, n.remindersDone = stop, make(chan struct{})
	go func() {
		defer close(n.remindersDone)
		(&actors.ReminderService{
			Source: meteredJournal, Router: n.router,
			Interval: cfg.ReminderInterval, Logger: cfg.Logger,
		}).Run(remindCtx)
	}()

	n.booking = booking.New(booking.Config{
		Catalog:        catalog,
		Router:         n.router,
		Tokens:         n.tokenChecker(),
		RequestTimeout: cfg.RequestTimeout,
		Logger:         cfg.Logger,
	})
	n.streams = httpapi.NewStreams(n.tokens, httpapi.StreamOptions{
		// A token this node has not heard of yet: the same check as the
		// booking calls (the feed asks the queue manager; the manager's own
		// table answers from memory).
		Lookup:    n.tokenChecker().Lookup,
		Interval:  cfg.StreamInterval,
		Heartbeat: cfg.StreamHeartbeat,
		// An open stream of a waiting token counts as a poll: often enough
		// that it never leaves the line for want of one.
		KeepAlive:  min(cfg.StreamHeartbeat, cfg.WaitIdleTTL/3),
		Limit:      cfg.StreamLimit,
		Registerer: n.registry,
		Logger:     cfg.Logger,
	})
	n.http = httpapi.NewServer(httpapi.New(httpapi.Config{
		Booking:    n.booking,
		AdminKey:   cfg.AdminKey,
		Registerer: n.registry,
		Gatherer:   n.registry,
		Ready:      n.Ready,
		Pprof:      cfg.Pprof,
		Streams:    n.streams,
		OpsPage:    cfg.OpsPage,
		Logger:     cfg.Logger,
		RateLimits: httpapi.RateLimits{Users: cfg.RateUsers, TokenIssue: cfg.RateTokenIssue,
			TokenPoll: cfg.RateTokenPoll, TrustedProxies: cfg.TrustedProxies},
		IdentityHeader: cfg.IdentityHeader,
	}), cfg.Logger)
	return n, nil
}

// pingQueue activates the queue manager and waits for its recovery.
func (n *Node) pingQueue(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := n.router.Request(ctx, "queue", "main", &messages.GetToken{Token: ""})
	var rej *messages.Rejection
	if errors.As(err, &rej) && rej.GetCode() == messages.CodeTokenInvalid {
		return nil
	}
	if err == nil {
		return nil
	}
	return fmt.Errorf("queue manager: %w", err)
}

// Ready reports whether the store is reachable and the queue manager answers.
func (n *Node) Ready(ctx context.Context) error {
	if err := n.metered.Ping(ctx); err != nil {
		return err
	}
	return n.pingQueue(ctx)
}

// App is the node's HTTP application.
func (n *Node) App() *fiber.App { return n.http.App() }

// Catalog is the node's catalog (for demo data and tests).
func (n *Node) Catalog() *persistence.Catalog { return n.catalog }

// Router reaches the node's actors (for demo data and tests).
func (n *Node) Router() cluster.Router { return n.router }

// Booking is the node's application service (for demo data and tests).
func (n *Node) Booking() *booking.Service { return n.booking }

// Serve answers HTTP on ln until Shutdown; it returns nil after Shutdown.
// Open ln with httpapi.Listen: a stop then refuses new connections without
// resetting the ones queued in the listener's backlog.
func (n *Node) Serve(ln net.Listener) error { return n.http.Serve(ln) }

// Shutdown stops taking connections and answers every request already
// read (httpapi.Server.Shutdown) until ctx ends — then the connections left
// are cut and reported in the error. Whatever the drain's outcome, it then
// stops the actors (they finish their writes), flushes and closes the
// journal, and closes the pool.
func (n *Node) Shutdown(ctx context.Context) error {
	var errs []error
	if n.streams != nil {
		// Streams never end by themselves: close them before the drain.
		n.streams.Close()
	}
	if n.http != nil {
		if err := n.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
	}
	if n.stopReminders != nil {
		n.stopReminders()
		<-n.remindersDone
	}
	if n.feed != nil {
		n.feed.Stop()
	}
	if n.router != nil {
		n.router.Stop()
	}
	if n.system != nil && !n.cfg.Cluster.Clustered() { // leaving a cluster shut it down
		n.system.Shutdown()
	}
	if n.journal != nil {
		n.journal.Close()
	}
	n.pool.Close()
	return errors.Join(errs...)
}

// lateRouter forwards to a router set after the producers were built. In a
// cluster, peers place grains on this node as soon as it joins, before set:
// an actor that recovers open work then (a seat re-driving a debit) waits.
type lateRouter struct {
	ready chan struct{} // closed by set
	r     cluster.Router
}

func newLateRouter() *lateRouter { return &lateRouter{ready: make(chan struct{})} }

func (l *lateRouter) set(r cluster.Router) {
	l.r = r
	close(l.ready)
}

func (l *lateRouter) Request(ctx context.Context, kind, identity string, msg proto.Message) (proto.Message, error) {
	select {
	case <-l.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return l.r.Request(ctx, kind, identity, msg)
}

// RequestAsync implements cluster.AsyncRequester: before set, in the
// background.
func (l *lateRouter) RequestAsync(kind, identity string, msg proto.Message, timeout time.Duration, then func(proto.Message, error)) {
	select {
	case <-l.ready:
		cluster.RequestAsync(l.r, kind, identity, msg, timeout, then)
	default:
		cluster.RequestInBackground(l, kind, identity, msg, timeout, then)
	}
}

func (l *lateRouter) Send(kind, identity string, msg proto.Message) {
	select {
	case <-l.ready:
		l.r.Send(kind, identity, msg)
	default:
		go func() {
			<-l.ready
			l.r.Send(kind, identity, msg)
		}()
	}
}
