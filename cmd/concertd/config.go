package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	httpapi "github.com/concert/ticketing/http"
	"github.com/concert/ticketing/node"
)

// Config is the server's configuration. Every setting is both a command-line
// flag and an environment variable: a flag given on the command line wins over
// the environment, the environment over the default. An empty environment
// variable counts as unset. The README's configuration table lists the same
// settings (a test keeps them in sync).
type Config struct {
	HTTPAddr       string        // HTTP_ADDR, -http-addr
	DatabaseURL    string        // DATABASE_URL, -database-url; required
	AdminKey       string        // ADMIN_KEY, -admin-key; empty turns the admin routes off
	HoldTTL        time.Duration // HOLD_TTL, -hold-ttl
	HoldLimit      int           // HOLD_LIMIT, -hold-limit
	ActiveTokens   int           // ACTIVE_TOKENS, -active-tokens
	TokenIdleTTL   time.Duration // TOKEN_IDLE_TTL, -token-idle-ttl
	WaitIdleTTL    time.Duration // WAIT_IDLE_TTL, -wait-idle-ttl
	SnapshotEvery  int           // SNAPSHOT_EVERY, -snapshot-every
	ActorIdleTTL   time.Duration // ACTOR_IDLE_TTL, -actor-idle-ttl
	RequestTimeout time.Duration // REQUEST_TIMEOUT, -request-timeout
	// ShutdownTimeout bounds a graceful stop's drain: answering the
	// requests already read (SHUTDOWN_TIMEOUT, -shutdown-timeout).
	ShutdownTimeout time.Duration
	// IdempotencyRetention is how long idempotency keys and payment records
	// are kept (IDEMPOTENCY_RETENTION, -idempotency-retention).
	IdempotencyRetention time.Duration
	// ReminderInterval is how often due reminders are scanned
	// (REMINDER_INTERVAL, -reminder-interval).
	ReminderInterval time.Duration
	// JournalPrune deletes journal rows behind a durable snapshot
	// (JOURNAL_PRUNE, -journal-prune).
	JournalPrune bool
	// Pprof serves the Go profiler at /debug/pprof/ (PPROF, -pprof).
	Pprof bool
	// OpsPage serves the live operations page at /ops (OPS_PAGE, -ops-page).
	OpsPage bool
	// Token streams (GET /users/token/stream): STREAM_INTERVAL,
	// STREAM_HEARTBEAT, STREAM_LIMIT.
	StreamInterval  time.Duration
	StreamHeartbeat time.Duration
	StreamLimit     int
	JournalWriters  int    // JOURNAL_WRITERS, -journal-writers
	DBMaxConns      int    // DB_MAX_CONNS, -db-max-conns
	NodeID          string // NODE_ID, -node-id; default the host name
	DemoData        bool   // DEMO_DATA, -demo
	LogLevel        string // LOG_LEVEL, -log-level: debug, info, warn or error
	// Per-client rate limits, requests per minute (0: none): RATE_USERS,
	// RATE_TOKEN_ISSUE, RATE_TOKEN_POLL; TRUSTED_PROXIES names the reverse
	// proxies whose X-Forwarded-For is believed.
	RateUsers, RateTokenIssue, RateTokenPoll int
	TrustedProxies                           []netip.Prefix
	// IdentityHeader turns on the trusted-identity mode (IDENTITY_HEADER).
	IdentityHeader string

	// Cluster settings (see clusterSettings in cluster_config.go).
	Cluster node.ClusterConfig
}

// setting describes one configuration value. def is the default in the same
// text form the flag and the environment variable take.
type setting struct {
	env, flag, def, usage string
	isBool                bool
	apply                 func(c *Config, raw string) error
}

// maxAdminKeyLen is the longest X-Admin-Key the API accepts, in characters.
const maxAdminKeyLen = 255

// hostname is replaceable in tests.
var hostname = os.Hostname

var settings = append(baseSettings, clusterSettings...)

var baseSettings = []setting{
	str("HTTP_ADDR", "http-addr", ":8080", "address the HTTP API listens on (host:port)",
		func(c *Config) *string { return &c.HTTPAddr }),
	str("DATABASE_URL", "database-url", "", "PostgreSQL connection URL (postgres://user@host:port/db?sslmode=disable)",
		func(c *Config) *string { return &c.DatabaseURL }),
	str("ADMIN_KEY", "admin-key", "", "key for the admin routes (X-Admin-Key header); empty turns them off",
		func(c *Config) *string { return &c.AdminKey }),
	dur("HOLD_TTL", "hold-ttl", "5m", "how long a seat stays held for an unpaid reservation",
		func(c *Config) *time.Duration { return &c.HoldTTL }),
	num("HOLD_LIMIT", "hold-limit", "4", "most seats one user may hold at the same time",
		func(c *Config) *int { return &c.HoldLimit }),
	num("ACTIVE_TOKENS", "active-tokens", "1000", "most queue tokens active at once; later users wait in line",
		func(c *Config) *int { return &c.ActiveTokens }),
	dur("TOKEN_IDLE_TTL", "token-idle-ttl", "10m", "an active token unused this long expires",
		func(c *Config) *time.Duration { return &c.TokenIdleTTL }),
	dur("WAIT_IDLE_TTL", "wait-idle-ttl", "5m", "a waiting token not polled this long leaves the line",
		func(c *Config) *time.Duration { return &c.WaitIdleTTL }),
	num("SNAPSHOT_EVERY", "snapshot-every", "500", "events an actor journals between two snapshots",
		func(c *Config) *int { return &c.SnapshotEvery }),
	dur("ACTOR_IDLE_TTL", "actor-idle-ttl", "2m", "an actor idle this long (up to twice as long) is passivated (stopped; recovered on next use)",
		func(c *Config) *time.Duration { return &c.ActorIdleTTL }),
	dur("REQUEST_TIMEOUT", "request-timeout", "5s", "time limit for one API request",
		func(c *Config) *time.Duration { return &c.RequestTimeout }),
	dur("SHUTDOWN_TIMEOUT", "shutdown-timeout", "15s", "on SIGTERM or SIGINT, time allowed to answer the requests already received before they are cut",
		func(c *Config) *time.Duration { return &c.ShutdownTimeout }),
	dur("IDEMPOTENCY_RETENTION", "idempotency-retention", "24h", "how long an Idempotency-Key of a charge or payment is honoured (and a payment record kept by its wallet)",
		func(c *Config) *time.Duration { return &c.IdempotencyRetention }),
	dur("REMINDER_INTERVAL", "reminder-interval", "1s", "how often durable reminders are scanned to wake actors with open work (expiries, payments) after a restart",
		func(c *Config) *time.Duration { return &c.ReminderInterval }),
	{env: "JOURNAL_PRUNE", flag: "journal-prune", def: "false", isBool: true,
		usage: "delete journal rows older than an actor's previous snapshot (keeps the database bounded; turns off the full event history)",
		apply: func(c *Config, raw string) error {
			v, err := strconv.ParseBool(raw)
			if err != nil {
				return fmt.Errorf("want true or false, got %q", raw)
			}
			c.JournalPrune = v
			return nil
		}},
	{env: "PPROF", flag: "pprof", def: "false", isBool: true,
		usage: "serve the Go profiler at /debug/pprof/ (to X-Admin-Key holders; to loopback clients only when no admin key is set)",
		apply: func(c *Config, raw string) error {
			v, err := strconv.ParseBool(raw)
			if err != nil {
				return fmt.Errorf("want true or false, got %q", raw)
			}
			c.Pprof = v
			return nil
		}},
	boolean("OPS_PAGE", "ops-page", "serve the live operations page at /ops (and its figures at /ops/data) to whoever can reach /metrics",
		func(c *Config) *bool { return &c.OpsPage }),
	dur("STREAM_INTERVAL", "stream-interval", "1s", "how often token streams look for changes: at most one token event per stream per interval (positions are coalesced)",
		func(c *Config) *time.Duration { return &c.StreamInterval }),
	dur("STREAM_HEARTBEAT", "stream-heartbeat", "15s", "a token stream sent nothing this long gets a heartbeat event",
		func(c *Config) *time.Duration { return &c.StreamHeartbeat }),
	num("STREAM_LIMIT", "stream-limit", "50000", "most token streams open at once on this node (more are refused with 503)",
		func(c *Config) *int { return &c.StreamLimit }),
	num("JOURNAL_WRITERS", "journal-writers", "2", "concurrent journal writers (each uses one database connection per batch)",
		func(c *Config) *int { return &c.JournalWriters }),
	num("DB_MAX_CONNS", "db-max-conns", "16", "size of the database connection pool; must exceed JOURNAL_WRITERS",
		func(c *Config) *int { return &c.DBMaxConns }),
	str("NODE_ID", "node-id", "", "this node's name, stored with every journaled event",
		func(c *Config) *string { return &c.NodeID }),
	{env: "DEMO_DATA", flag: "demo", def: "false", isBool: true,
		usage: "load demo concerts and users on start if the catalog is empty",
		apply: func(c *Config, raw string) error {
			v, err := strconv.ParseBool(raw)
			if err != nil {
				return fmt.Errorf("want true or false, got %q", raw)
			}
			c.DemoData = v
			return nil
		}},
	rateLimit("RATE_USERS", "rate-users", "60", "user creations (POST /users) one client may make per minute; 0: no limit",
		func(c *Config) *int { return &c.RateUsers }),
	rateLimit("RATE_TOKEN_ISSUE", "rate-token-issue", "120", "token requests (POST /users/token) one client may make per minute; 0: no limit",
		func(c *Config) *int { return &c.RateTokenIssue }),
	rateLimit("RATE_TOKEN_POLL", "rate-token-poll", "1200", "token polls (GET /users/token) one client may make per minute; 0: no limit",
		func(c *Config) *int { return &c.RateTokenPoll }),
	{env: "TRUSTED_PROXIES", flag: "trusted-proxies", def: "",
		usage: "reverse proxies (addresses or CIDR prefixes, comma-separated) whose X-Forwarded-For names the client for rate limits",
		apply: func(c *Config, raw string) error {
			p, err := httpapi.ParseTrustedProxies(raw)
			if err != nil {
				return fmt.Errorf("want addresses or CIDR prefixes separated by commas: %v", err)
			}
			c.TrustedProxies = p
			return nil
		}},
	{env: "IDENTITY_HEADER", flag: "identity-header", def: "",
		usage: "trusted-identity mode: the header an authenticating gateway sets to the userId it vouches for; user routes then act only for that user",
		apply: func(c *Config, raw string) error {
			if len(raw) > 100 || strings.IndexFunc(raw, func(r rune) bool { return !isTokenChar(r) }) >= 0 {
				return fmt.Errorf("want an HTTP header name (letters, digits and -), got %q", raw)
			}
			c.IdentityHeader = raw
			return nil
		}},
	{env: "LOG_LEVEL", flag: "log-level", def: "info", usage: "log level: debug, info, warn or error",
		apply: func(c *Config, raw string) error {
			var l slog.Level
			if err := l.UnmarshalText([]byte(raw)); err != nil {
				return fmt.Errorf("want debug, info, warn or error, got %q", raw)
			}
			c.LogLevel = strings.ToLower(raw)
			return nil
		}},
}

// boolean is a true/false setting, default false; a bare flag sets it.
func boolean(env, flag, usage string, field func(*Config) *bool) setting {
	return setting{env: env, flag: flag, def: "false", usage: usage, isBool: true,
		apply: func(c *Config, raw string) error {
			v, err := strconv.ParseBool(raw)
			if err != nil {
				return fmt.Errorf("want true or false, got %q", raw)
			}
			*field(c) = v
			return nil
		}}
}

func str(env, flag, def, usage string, field func(*Config) *string) setting {
	return setting{env: env, flag: flag, def: def, usage: usage,
		apply: func(c *Config, raw string) error {
			*field(c) = raw
			return nil
		}}
}

// dur is a duration setting; it must be positive.
func dur(env, flag, def, usage string, field func(*Config) *time.Duration) setting {
	return setting{env: env, flag: flag, def: def, usage: usage,
		apply: func(c *Config, raw string) error {
			d, err := time.ParseDuration(raw)
			if err != nil {
				return fmt.Errorf("want a duration such as 90s, 5m or 1h30m, got %q", raw)
			}
			if d <= 0 {
				return fmt.Errorf("must be positive, got %s", raw)
			}
			*field(c) = d
			return nil
		}}
}

// num is an integer setting; it must be at least 1.
func num(env, flag, def, usage string, field func(*Config) *int) setting {
	return setting{env: env, flag: flag, def: def, usage: usage,
		apply: func(c *Config, raw string) error {
			n, err := strconv.Atoi(strings.TrimSpace(raw))
			if err != nil {
				return fmt.Errorf("want a whole number, got %q", raw)
			}
			if n < 1 {
				return fmt.Errorf("must be at least 1, got %d", n)
			}
			*field(c) = n
			return nil
		}}
}

// rateLimit is a rate setting: requests per minute, at least 0 (none).
func rateLimit(env, flag, def, usage string, field func(*Config) *int) setting {
	return setting{env: env, flag: flag, def: def, usage: usage,
		apply: func(c *Config, raw string) error {
			n, err := strconv.Atoi(strings.TrimSpace(raw))
			if err != nil {
				return fmt.Errorf("want a whole number of requests per minute, got %q", raw)
			}
			if n < 0 {
				return fmt.Errorf("must be 0 (no limit) or more, got %d", n)
			}
			*field(c) = n
			return nil
		}}
}

// isTokenChar reports whether r may appear in an HTTP header name (RFC 9110
// tchar).
func isTokenChar(r rune) bool {
	return r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("!#$%&'*+-.^_`|~", r))
}

// rawFlag records a flag's text and whether the command line set it.
type rawFlag struct {
	value  string
	set    bool
	isBool bool
}

func (f *rawFlag) String() string {
	if f == nil {
		return ""
	}
	return f.value
}

func (f *rawFlag) Set(s string) error {
	f.value, f.set = s, true
	return nil
}

func (f *rawFlag) IsBoolFlag() bool { return f != nil && f.isBool }

// LoadConfig builds the configuration from command-line arguments (without the
// program name) and an environment lookup such as os.Getenv. It reports every
// invalid setting at once. For -h or -help it returns an error wrapping
// flag.ErrHelp whose text includes Usage().
func LoadConfig(args []string, getenv func(string) string) (Config, error) {
	fs := flag.NewFlagSet("concertd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	raws := make([]*rawFlag, len(settings))
	for i, s := range settings {
		raws[i] = &rawFlag{value: s.def, isBool: s.isBool}
		fs.Var(raws[i], s.flag, s.usage)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, fmt.Errorf("%w\n\n%s", err, Usage())
		}
		return Config{}, fmt.Errorf("%w (see -h)", err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q (settings are flags such as -http-addr=:8080; see -h)", fs.Arg(0))
	}

	var c Config
	var errs []error
	failed := map[string]bool{} // env names of the settings that did not parse
	for i, s := range settings {
		raw, from := s.def, "default of -"+s.flag
		if raws[i].set {
			raw, from = raws[i].value, "-"+s.flag
		} else if v := getenv(s.env); v != "" {
			raw, from = v, s.env
		}
		if err := s.apply(&c, raw); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", from, err))
			failed[s.env] = true
		}
	}
	errs = append(errs, c.check(failed)...)
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("invalid configuration: %w", errors.Join(errs...))
	}
	if c.NodeID == "" {
		host, err := hostname()
		if err != nil || host == "" {
			host = "concertd"
		}
		c.NodeID = host
	}
	return c, nil
}

// check validates what parsing single settings cannot: required settings,
// formats and relations. A relation is only checked when none of its
// settings is in failed (env names of the settings that did not parse:
// their error is reported already, and their value here is zero).
func (c Config) check(failed map[string]bool) []error {
	var errs []error
	if _, port, err := net.SplitHostPort(c.HTTPAddr); err != nil || port == "" {
		errs = append(errs, fmt.Errorf("HTTP_ADDR/-http-addr: want host:port or :port, got %q", c.HTTPAddr))
	}
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL/-database-url: required: the PostgreSQL connection URL, "+
			"e.g. postgres://user@host:5432/db?sslmode=disable"))
	}
	if c.DatabaseURL != "" && strings.Contains(c.DatabaseURL, "://") {
		// Keyword/value strings ("host=... dbname=...") are left to pgx.
		u, err := url.Parse(c.DatabaseURL)
		if err != nil {
			errs = append(errs, errors.New("DATABASE_URL/-database-url: not a valid URL"))
		} else if u.Scheme != "postgres" && u.Scheme != "postgresql" {
			errs = append(errs, fmt.Errorf("DATABASE_URL/-database-url: scheme must be postgres:// or postgresql://, got %s://", u.Scheme))
		}
	}
	if !failed["DB_MAX_CONNS"] && !failed["JOURNAL_WRITERS"] && c.DBMaxConns <= c.JournalWriters {
		errs = append(errs, fmt.Errorf("DB_MAX_CONNS (%d) must exceed JOURNAL_WRITERS (%d): the journal writers would take every connection",
			c.DBMaxConns, c.JournalWriters))
	}
	if err := c.Cluster.Check(); err != nil {
		errs = append(errs, err)
	}
	if strings.IndexFunc(c.NodeID, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 || len(c.NodeID) > 200 {
		errs = append(errs, fmt.Errorf("NODE_ID/-node-id: want at most 200 printable characters without spaces, got %q", c.NodeID))
	}
	// The admin routes compare the X-Admin-Key header, which the API takes
	// as UTF-8 text of at most 255 characters; never echo the key.
	if !utf8.ValidString(c.AdminKey) || strings.IndexByte(c.AdminKey, 0) >= 0 || utf8.RuneCountInString(c.AdminKey) > maxAdminKeyLen {
		errs = append(errs, fmt.Errorf("ADMIN_KEY/-admin-key: want at most %d characters of UTF-8 text", maxAdminKeyLen))
	}
	return errs
}

// Node is the node configuration for these settings.
func (c Config) Node(logger *slog.Logger) node.Config {
	return node.Config{
		DatabaseURL:          c.DatabaseURL,
		AdminKey:             c.AdminKey,
		HoldTTL:              c.HoldTTL,
		HoldLimit:            c.HoldLimit,
		ActiveTokens:         c.ActiveTokens,
		TokenIdleTTL:         c.TokenIdleTTL,
		WaitIdleTTL:          c.WaitIdleTTL,
		ActorIdleTTL:         c.ActorIdleTTL,
		RequestTimeout:       c.RequestTimeout,
		SnapshotEvery:        c.SnapshotEvery,
		IdempotencyRetention: c.IdempotencyRetention,
		ReminderInterval:     c.ReminderInterval,
		JournalPrune:         c.JournalPrune,
		Pprof:                c.Pprof,
		OpsPage:              c.OpsPage,
		StreamInterval:       c.StreamInterval,
		StreamHeartbeat:      c.StreamHeartbeat,
		StreamLimit:          c.StreamLimit,
		JournalWriters:       c.JournalWriters,
		DBMaxConns:           c.DBMaxConns,
		NodeID:               c.NodeID,
		RateUsers:            c.RateUsers,
		RateTokenIssue:       c.RateTokenIssue,
		RateTokenPoll:        c.RateTokenPoll,
		TrustedProxies:       c.TrustedProxies,
		IdentityHeader:       c.IdentityHeader,
		Logger:               logger,
		Cluster:              c.Cluster,
	}
}

// Redacted returns a copy fit for logging: the admin key and the database
// password are masked.
func (c Config) Redacted() Config {
	if c.AdminKey != "" {
		c.AdminKey = "REDACTED"
	}
	if u, err := url.Parse(c.DatabaseURL); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
			c.DatabaseURL = u.String()
		}
	}
	return c
}

// Usage is the help text: every setting with its flag, environment variable,
// default and meaning.
func Usage() string {
	var b strings.Builder
	b.WriteString("Usage: concertd [flags]\n\n" +
		"Every setting is a flag and an environment variable; the flag wins.\n\n")
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "FLAG\tENV\tDEFAULT\tMEANING")
	for _, s := range settings {
		def := s.def
		switch {
		case s.env == "NODE_ID":
			def = "(host name)"
		case def == "":
			def = `""`
		}
		fmt.Fprintf(w, "-%s\t%s\t%s\t%s\n", s.flag, s.env, def, s.usage)
	}
	w.Flush()
	return b.String()
}
