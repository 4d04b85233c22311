// Package http is the HTTP API of the service (../shared/spec/API.md): a
// Fiber app whose handlers decode and validate a request, call the booking
// service, and map its errors to statuses in one place (errors.go). The
// contract is also served as OpenAPI 3 at /openapi.yaml.
package http

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"net/netip"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// MaxBodyBytes is the largest request body accepted (413 above it).
const MaxBodyBytes = 64 << 10

// MaxHeaderBytes bounds a request's line and header section together (431
// HEADERS_TOO_LARGE above it): fasthttp's read buffer, which must hold
// them whole. Fiber's default; the longest header the contract allows is
// far shorter (a 255-character bearer token).
const MaxHeaderBytes = 4 << 10

// readTimeout bounds reading one request (headers and body); idleTimeout
// bounds a keep-alive connection's wait for its next request. readTimeout
// stays below the default SHUTDOWN_TIMEOUT, so a half-sent request cannot
// hold a graceful stop to its deadline.
const (
	readTimeout = 10 * time.Second
	idleTimeout = 60 * time.Second
)

// Config holds what the app needs.
type Config struct {
	Booking Booking
	// AdminKey guards the admin routes (X-Admin-Key); empty turns them off
	// (they answer 404). At most maxAdminKeyLen characters of UTF-8 text
	// (a longer key could never be sent).
	AdminKey string
	// Registerer receives the HTTP and queue metrics; Gatherer is what
	// /metrics serves. A private registry is used for both when nil.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// RateLimits are the per-client limits of user creation and of token
	// issue and polling (ratelimit.go); zero values: no limit.
	RateLimits RateLimits
	// IdentityHeader, when set, turns on the trusted-identity mode
	// (identity.go): the header an authenticating gateway sets to the
	// userId it vouches for; the user routes require it and act only for
	// that user.
	IdentityHeader string
	// Ready reports whether the node can serve (/readyz); nil means always.
	Ready func(context.Context) error
	// Pprof serves the Go profiler under /debug/pprof/ (pprof.go): to
	// admin-key holders, or to loopback clients when no key is set.
	Pprof bool
	// Streams serves GET /users/token/stream (stream.go); nil leaves the
	// route out. The caller closes it before stopping the server.
	Streams *Streams
	// OpsPage serves the live operations page at /ops and its figures at
	// /ops/data (ops_page.go, ops_data.go), to anyone who can reach
	// /metrics: it shows only what /metrics serves.
	OpsPage bool
	Logger  *slog.Logger
}

// New builds the app with every route of the contract.
func New(cfg Config) *fiber.App {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer == nil || cfg.Gatherer == nil {
		reg := prometheus.NewRegistry()
		cfg.Registerer, cfg.Gatherer = reg, reg
	}
	h := &handlers{b: cfg.Booking, log: cfg.Logger, adminKeyDigest: sha256.Sum256([]byte(cfg.AdminKey)), ready: cfg.Ready,
		trusted: cfg.RateLimits.TrustedProxies, identityHeader: cfg.IdentityHeader}
	limitUsers, limitIssue, limitPoll := h.limit(newLimiter(cfg.RateLimits.Users)),
		h.limit(newLimiter(cfg.RateLimits.TokenIssue)), h.limit(newLimiter(cfg.RateLimits.TokenPoll))

	app := fiber.New(fiber.Config{
		BodyLimit:      MaxBodyBytes,
		ReadBufferSize: MaxHeaderBytes,
		// Not Immutable: Fiber's strings (headers, params, method, body)
		// alias fasthttp's buffers, which the next request on the
		// connection reuses. The few that outlive a handler are copied
		// where they are taken: the bearer token and the Idempotency-Key
		// (they reach actors and journals; text.go), the metric labels (metrics.go)
		// and the logged method and path (errors.go). Everything else is
		// parsed into numbers or times, or decoded by encoding/json (which
		// copies), before the handler returns.
		// A client must send its whole request within ReadTimeout and may
		// keep an idle connection for IdleTimeout: without them a few
		// slow or silent connections hold file descriptors (and a graceful
		// stop) for ever. Streams are hijacked and not subject to them.
		ReadTimeout:           readTimeout,
		IdleTimeout:           idleTimeout,
		DisableStartupMessage: true,
		ErrorHandler:          h.errorHandler,
		JSONEncoder:           encodeJSON,
		AppName:               "concert-ticketing",
	})
	// A request fasthttp cannot parse is answered without quoting its bytes
	// (parse_errors.go).
	onParseError := app.Server().ErrorHandler
	app.Server().ErrorHandler = func(ctx *fasthttp.RequestCtx, err error) { onParseError(ctx, parseError(err)) }
	app.Use(newMetrics(cfg.Registerer, cfg.Booking, h.errorHandler))
	// A request whose body length is ambiguous is refused before any
	// route (framing.go).
	app.Use(checkFraming)
	// So is a compressed body (coding.go): it would inflate past the limit.
	app.Use(checkCoding)

	// Rate limits (ratelimit.go) and the identity of the trusted-identity
	// mode (identity.go) come first on the routes they guard.
	app.Post("/users", limitUsers, h.createUser)
	app.Post("/users/token", limitIssue, h.identity, h.issueToken)
	app.Get("/users/token", limitPoll, h.identity, h.getToken)
	if cfg.Streams != nil {
		// A stream's connection is handed to the hub, which closes it.
		app.Server().KeepHijackedConns = true
		// Opening a stream counts as a poll.
		app.Get("/users/token/stream", limitPoll, h.identity, cfg.Streams.handler)
	}

	app.Get("/concerts", h.listConcerts)
	app.Get("/concerts/:concertId/available-date", h.availableDates)
	app.Get("/concerts/:concertId/available-seats", h.availableSeats)
	if cfg.AdminKey != "" {
		app.Post("/admin/concerts", h.requireAdmin, h.createConcert)
	}

	app.Post("/reservations", h.identity, h.hold)
	app.Get("/reservations/:id", h.identity, h.getReservation)
	app.Delete("/reservations/:id", h.identity, h.cancelReservation)

	app.Get("/customers/point", h.identity, h.getPoints)
	app.Patch("/customers/point", h.identity, h.chargePoints)

	app.Post("/payments", h.identity, h.pay)

	app.Get("/healthz", h.healthz)
	app.Get("/readyz", h.readyz)
	app.Get("/metrics", metricsHandler(cfg.Gatherer))
	app.Get("/openapi.yaml", serveOpenAPI)
	if cfg.OpsPage {
		ops := &opsSampler{g: cfg.Gatherer, ready: cfg.Ready}
		app.Get("/ops", opsPageHandler)
		app.Get("/ops/data", ops.handler)
	}
	if cfg.Pprof {
		h.mountPprof(app, cfg.AdminKey)
	}
	return app
}

// handlers holds what the route handlers share.
type handlers struct {
	b   Booking
	log *slog.Logger
	// adminKeyDigest is the SHA-256 of Config.AdminKey (admin.go).
	adminKeyDigest [sha256.Size]byte
	ready          func(context.Context) error
	// trusted are the reverse proxies whose X-Forwarded-For names the
	// client (ratelimit.go).
	trusted []netip.Prefix
	// identityHeader is Config.IdentityHeader.
	identityHeader string
}
