package main

import (
	"errors"
	"flag"
	"log/slog"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/concert/ticketing/node"
)

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// testDB is the DATABASE_URL the tests set unless they test it.
const testDB = "postgres://postgres@127.0.0.1:5433/concert?sslmode=disable"

// withDB is kv (a copy) with DATABASE_URL=testDB unless kv sets it.
func withDB(kv map[string]string) map[string]string {
	out := map[string]string{"DATABASE_URL": testDB}
	for k, v := range kv {
		out[k] = v
	}
	return out
}

func defaults() Config {
	return Config{
		HTTPAddr:             ":8080",
		DatabaseURL:          testDB,
		ShutdownTimeout:      15 * time.Second,
		IdempotencyRetention: 24 * time.Hour,
		ReminderInterval:     time.Second,
		HoldTTL:              5 * time.Minute,
		HoldLimit:            4,
		ActiveTokens:         1000,
		TokenIdleTTL:         10 * time.Minute,
		WaitIdleTTL:          5 * time.Minute,
		SnapshotEvery:        500,
		ActorIdleTTL:         2 * time.Minute,
		RequestTimeout:       5 * time.Second,
		RateUsers:            60,
		RateTokenIssue:       120,
		RateTokenPoll:        1200,
		JournalWriters:       2,
		DBMaxConns:           16,
		StreamInterval:       time.Second,
		StreamHeartbeat:      15 * time.Second,
		StreamLimit:          50000,
		NodeID:               "testhost",
		LogLevel:             "info",
		Cluster:              node.ClusterConfig{Provider: "single", Name: "concert", Host: "127.0.0.1"},
	}
}

func stubHostname(t *testing.T, name string, err error) {
	t.Helper()
	old := hostname
	hostname = func() (string, error) { return name, err }
	t.Cleanup(func() { hostname = old })
}

func TestLoadConfig(t *testing.T) {
	stubHostname(t, "testhost", nil)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(c *Config)
	}{
		{name: "defaults", want: func(c *Config) {}},
		{name: "empty env counts as unset",
			env:  map[string]string{"HOLD_TTL": "", "HTTP_ADDR": "", "DEMO_DATA": ""},
			want: func(c *Config) {}},
		{name: "every setting from env",
			env: map[string]string{
				"HTTP_ADDR": "127.0.0.1:9000", "DATABASE_URL": "postgres://u:p@db:5432/x?sslmode=disable",
				"ADMIN_KEY": "secret", "HOLD_TTL": "1500ms", "HOLD_LIMIT": "2", "ACTIVE_TOKENS": "50",
				"TOKEN_IDLE_TTL": "1m", "WAIT_IDLE_TTL": "30s", "SNAPSHOT_EVERY": "20",
				"ACTOR_IDLE_TTL": "1h", "REQUEST_TIMEOUT": "250ms", "JOURNAL_WRITERS": "3",
				"DB_MAX_CONNS": "8", "NODE_ID": "node-a", "DEMO_DATA": "true", "LOG_LEVEL": "DEBUG",
				"SHUTDOWN_TIMEOUT": "30s", "IDEMPOTENCY_RETENTION": "48h", "REMINDER_INTERVAL": "250ms", "JOURNAL_PRUNE": "true",
				"OPS_PAGE": "true", "STREAM_INTERVAL": "250ms", "STREAM_HEARTBEAT": "5s", "STREAM_LIMIT": "10", "PPROF": "true",
				"RATE_USERS": "0", "RATE_TOKEN_ISSUE": "5", "RATE_TOKEN_POLL": "6",
				"TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7", "IDENTITY_HEADER": "X-User-Id",
			},
			want: func(c *Config) {
				*c = Config{
					Cluster:  defaults().Cluster,
					HTTPAddr: "127.0.0.1:9000", DatabaseURL: "postgres://u:p@db:5432/x?sslmode=disable",
					AdminKey: "secret", HoldTTL: 1500 * time.Millisecond, HoldLimit: 2, ActiveTokens: 50,
					TokenIdleTTL: time.Minute, WaitIdleTTL: 30 * time.Second, SnapshotEvery: 20,
					ActorIdleTTL: time.Hour, RequestTimeout: 250 * time.Millisecond, ShutdownTimeout: 30 * time.Second, JournalWriters: 3,
					DBMaxConns: 8, NodeID: "node-a", DemoData: true, LogLevel: "debug",
					IdempotencyRetention: 48 * time.Hour, ReminderInterval: 250 * time.Millisecond, JournalPrune: true, Pprof: true,
					OpsPage: true, StreamInterval: 250 * time.Millisecond, StreamHeartbeat: 5 * time.Second, StreamLimit: 10,
					RateUsers: 0, RateTokenIssue: 5, RateTokenPoll: 6,
					TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32")},
					IdentityHeader: "X-User-Id",
				}
			}},
		{name: "every setting from flags",
			args: []string{
				"-http-addr=:0", "-database-url", "postgresql://localhost/db", "-admin-key=k",
				"-hold-ttl=2m", "-hold-limit=1", "-active-tokens=1", "-token-idle-ttl=3m",
				"-wait-idle-ttl=4m", "-snapshot-every=1", "-actor-idle-ttl=5s", "-request-timeout=1s",
				"-journal-writers=1", "-db-max-conns=2", "-node-id=n1", "-demo", "-log-level=warn",
				"-shutdown-timeout=1m", "-idempotency-retention=1h", "-reminder-interval=2s", "-journal-prune", "-pprof",
				"-ops-page", "-stream-interval=2s", "-stream-heartbeat=1m", "-stream-limit=3",
				"-rate-users=1", "-rate-token-issue=2", "-rate-token-poll=3", "-trusted-proxies=::1", "-identity-header=X-Gateway-User",
			},
			want: func(c *Config) {
				*c = Config{
					Cluster:  defaults().Cluster,
					HTTPAddr: ":0", DatabaseURL: "postgresql://localhost/db", AdminKey: "k",
					HoldTTL: 2 * time.Minute, HoldLimit: 1, ActiveTokens: 1, TokenIdleTTL: 3 * time.Minute,
					WaitIdleTTL: 4 * time.Minute, SnapshotEvery: 1, ActorIdleTTL: 5 * time.Second,
					RequestTimeout: time.Second, ShutdownTimeout: time.Minute, JournalWriters: 1, DBMaxConns: 2, NodeID: "n1",
					DemoData: true, LogLevel: "warn",
					IdempotencyRetention: time.Hour, ReminderInterval: 2 * time.Second, JournalPrune: true, Pprof: true,
					OpsPage: true, StreamInterval: 2 * time.Second, StreamHeartbeat: time.Minute, StreamLimit: 3,
					RateUsers: 1, RateTokenIssue: 2, RateTokenPoll: 3,
					TrustedProxies: []netip.Prefix{netip.MustParsePrefix("::1/128")}, IdentityHeader: "X-Gateway-User",
				}
			}},
		{name: "flag wins over env",
			args: []string{"-hold-ttl=1m", "-hold-limit", "7", "-http-addr=:1"},
			env:  map[string]string{"HOLD_TTL": "9m", "HOLD_LIMIT": "9", "HTTP_ADDR": ":2", "ACTIVE_TOKENS": "3"},
			want: func(c *Config) { c.HoldTTL, c.HoldLimit, c.HTTPAddr, c.ActiveTokens = time.Minute, 7, ":1", 3 }},
		{name: "explicit empty flag wins over env",
			args: []string{"-admin-key="},
			env:  map[string]string{"ADMIN_KEY": "from-env"},
			want: func(c *Config) {}},
		{name: "flag wins over an invalid env value",
			args: []string{"-hold-ttl=1m"},
			env:  map[string]string{"HOLD_TTL": "forever"},
			want: func(c *Config) { c.HoldTTL = time.Minute }},
		{name: "-demo=false beats DEMO_DATA=true",
			args: []string{"-demo=false"},
			env:  map[string]string{"DEMO_DATA": "true"},
			want: func(c *Config) {}},
		{name: "DEMO_DATA=1",
			env:  map[string]string{"DEMO_DATA": "1"},
			want: func(c *Config) { c.DemoData = true }},
		{name: "double-dash flags",
			args: []string{"--demo", "--node-id", "x"},
			want: func(c *Config) { c.DemoData, c.NodeID = true, "x" }},
		{name: "keyword/value database string is passed through",
			env:  map[string]string{"DATABASE_URL": "host=/tmp dbname=concert"},
			want: func(c *Config) { c.DatabaseURL = "host=/tmp dbname=concert" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadConfig(tt.args, envOf(withDB(tt.env)))
			if err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			want := defaults()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestLoadConfigInvalid(t *testing.T) {
	stubHostname(t, "testhost", nil)
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr []string // substrings of the error
	}{
		{name: "duration without unit", env: map[string]string{"HOLD_TTL": "300"}, wantErr: []string{"HOLD_TTL", "duration"}},
		{name: "zero duration", args: []string{"-request-timeout=0s"}, wantErr: []string{"-request-timeout", "positive"}},
		{name: "negative duration", env: map[string]string{"ACTOR_IDLE_TTL": "-1m"}, wantErr: []string{"ACTOR_IDLE_TTL", "positive"}},
		{name: "bad duration flag", args: []string{"-token-idle-ttl=soon"}, wantErr: []string{"-token-idle-ttl"}},
		{name: "wait ttl zero", env: map[string]string{"WAIT_IDLE_TTL": "0"}, wantErr: []string{"WAIT_IDLE_TTL"}},
		{name: "hold ttl zero", args: []string{"-hold-ttl", "0s"}, wantErr: []string{"-hold-ttl"}},
		{name: "zero size", env: map[string]string{"HOLD_LIMIT": "0"}, wantErr: []string{"HOLD_LIMIT", "at least 1"}},
		{name: "negative size", args: []string{"-active-tokens=-5"}, wantErr: []string{"-active-tokens", "at least 1"}},
		{name: "not a number", env: map[string]string{"SNAPSHOT_EVERY": "lots"}, wantErr: []string{"SNAPSHOT_EVERY", "whole number"}},
		{name: "fraction", env: map[string]string{"JOURNAL_WRITERS": "1.5"}, wantErr: []string{"JOURNAL_WRITERS"}},
		{name: "pool not larger than writers", env: map[string]string{"JOURNAL_WRITERS": "8", "DB_MAX_CONNS": "8"}, wantErr: []string{"DB_MAX_CONNS", "JOURNAL_WRITERS"}},
		{name: "zero pool", args: []string{"-db-max-conns=0"}, wantErr: []string{"-db-max-conns"}},
		{name: "bad bool", env: map[string]string{"DEMO_DATA": "yes"}, wantErr: []string{"DEMO_DATA", "true or false"}},
		{name: "bad log level", args: []string{"-log-level=loud"}, wantErr: []string{"-log-level"}},
		{name: "address without port", env: map[string]string{"HTTP_ADDR": "localhost"}, wantErr: []string{"HTTP_ADDR"}},
		{name: "address with empty port", args: []string{"-http-addr=localhost:"}, wantErr: []string{"HTTP_ADDR"}},
		{name: "wrong URL scheme", env: map[string]string{"DATABASE_URL": "mysql://x/y"}, wantErr: []string{"DATABASE_URL", "scheme"}},
		{name: "node id with space", args: []string{"-node-id=a b"}, wantErr: []string{"NODE_ID"}},
		{name: "unknown flag", args: []string{"-nope"}, wantErr: []string{"-nope"}},
		{name: "flag missing its value", args: []string{"-hold-ttl"}, wantErr: []string{"hold-ttl"}},
		{name: "positional argument", args: []string{"serve"}, wantErr: []string{`"serve"`}},
		{name: "zero shutdown timeout", args: []string{"-shutdown-timeout=0s"}, wantErr: []string{"-shutdown-timeout", "positive"}},
		{name: "bad shutdown timeout", env: map[string]string{"SHUTDOWN_TIMEOUT": "15"}, wantErr: []string{"SHUTDOWN_TIMEOUT", "duration"}},
		{name: "admin key too long", env: map[string]string{"ADMIN_KEY": strings.Repeat("k", 256)}, wantErr: []string{"ADMIN_KEY", "255"}},
		{name: "admin key not UTF-8", env: map[string]string{"ADMIN_KEY": "k\xff"}, wantErr: []string{"ADMIN_KEY"}},
		{name: "missing database URL", env: map[string]string{"DATABASE_URL": ""}, wantErr: []string{"DATABASE_URL", "required"}},
		{name: "negative rate", env: map[string]string{"RATE_TOKEN_POLL": "-1"}, wantErr: []string{"RATE_TOKEN_POLL", "0 (no limit)"}},
		{name: "rate not a number", args: []string{"-rate-users=many"}, wantErr: []string{"-rate-users", "per minute"}},
		{name: "bad trusted proxy", env: map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8, gateway"}, wantErr: []string{"TRUSTED_PROXIES", "CIDR"}},
		{name: "identity header with a space", env: map[string]string{"IDENTITY_HEADER": "X User"}, wantErr: []string{"IDENTITY_HEADER", "header name"}},
		{name: "all errors reported at once",
			env:     map[string]string{"HOLD_TTL": "x", "HOLD_LIMIT": "0", "LOG_LEVEL": "loud"},
			wantErr: []string{"HOLD_TTL", "HOLD_LIMIT", "LOG_LEVEL"}},
		{name: "parse and format errors reported together",
			env: map[string]string{"HTTP_ADDR": "bad", "HOLD_TTL": "x", "DATABASE_URL": "",
				"NODE_ID": "a b", "JOURNAL_WRITERS": "9", "DB_MAX_CONNS": "2"},
			wantErr: []string{"HTTP_ADDR", "HOLD_TTL", "DATABASE_URL", "NODE_ID", "DB_MAX_CONNS (2) must exceed JOURNAL_WRITERS (9)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadConfig(tt.args, envOf(withDB(tt.env)))
			if err == nil {
				t.Fatalf("want an error, got %+v", got)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

// TestLoadConfigNoFollowUpErrors: a setting that does not parse is
// reported once, not again through a relation its zero value breaks.
func TestLoadConfigNoFollowUpErrors(t *testing.T) {
	_, err := LoadConfig(nil, envOf(withDB(map[string]string{"JOURNAL_WRITERS": "x", "HTTP_ADDR": "bad"})))
	if err == nil {
		t.Fatal("want an error")
	}
	if !strings.Contains(err.Error(), "JOURNAL_WRITERS") || !strings.Contains(err.Error(), "HTTP_ADDR") {
		t.Errorf("error %q lacks a setting", err)
	}
	if strings.Contains(err.Error(), "must exceed") {
		t.Errorf("error %q reports a follow-up of the parse error", err)
	}
}

func TestLoadConfigDoesNotEchoSecrets(t *testing.T) {
	_, err := LoadConfig(nil, envOf(map[string]string{"DATABASE_URL": "ftp://u:hunter2@h/db"}))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error must not contain the password: %v", err)
	}
}

func TestLoadConfigHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		_, err := LoadConfig([]string{arg}, envOf(nil))
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%s: want flag.ErrHelp, got %v", arg, err)
		}
		if !strings.Contains(err.Error(), "-hold-ttl") {
			t.Errorf("%s: help text lacks the settings: %v", arg, err)
		}
	}
}

func TestNodeIDDefaultsToHostname(t *testing.T) {
	stubHostname(t, "box-7", nil)
	c, err := LoadConfig(nil, envOf(withDB(nil)))
	if err != nil || c.NodeID != "box-7" {
		t.Fatalf("NodeID = %q, %v; want box-7", c.NodeID, err)
	}
	stubHostname(t, "", errors.New("no hostname"))
	c, err = LoadConfig(nil, envOf(withDB(nil)))
	if err != nil || c.NodeID == "" {
		t.Fatalf("NodeID = %q, %v; want a fallback", c.NodeID, err)
	}
}

// TestNodeCarriesEverySetting fails when a node setting is added to Config but
// not passed on.
func TestNodeCarriesEverySetting(t *testing.T) {
	c, err := LoadConfig([]string{"-database-url=postgres://h/d", "-admin-key=k", "-node-id=n", "-journal-prune", "-pprof", "-ops-page",
		"-trusted-proxies=10.0.0.0/8", "-identity-header=X-User-Id"}, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.Default()
	n := c.Node(logger)
	v := reflect.ValueOf(n)
	for i := 0; i < v.NumField(); i++ {
		if v.Field(i).IsZero() {
			t.Errorf("node.Config.%s is zero", v.Type().Field(i).Name)
		}
	}
	if n.Logger != logger || n.HoldTTL != c.HoldTTL || n.DBMaxConns != c.DBMaxConns || n.NodeID != "n" {
		t.Errorf("Node() = %+v from %+v", n, c)
	}
}

func TestRedacted(t *testing.T) {
	c := Config{AdminKey: "k", DatabaseURL: "postgres://u:secret@h:5432/d?sslmode=disable"}
	r := c.Redacted()
	if strings.Contains(r.AdminKey+r.DatabaseURL, "secret") || r.AdminKey == "k" {
		t.Errorf("Redacted() = %+v", r)
	}
	if !strings.HasPrefix(r.DatabaseURL, "postgres://u:") || !strings.HasSuffix(r.DatabaseURL, "@h:5432/d?sslmode=disable") {
		t.Errorf("Redacted() mangled the URL: %s", r.DatabaseURL)
	}
	if c.AdminKey != "k" {
		t.Error("Redacted() changed the original")
	}
	plain := Config{DatabaseURL: "postgres://postgres@127.0.0.1:5433/concert?sslmode=disable"}
	if got := plain.Redacted().DatabaseURL; got != plain.DatabaseURL {
		t.Errorf("URL without password changed: %s", got)
	}
}

// readmePending lists the settings whose README row is written but not
// merged yet (README.md has another owner); the test below fails as soon as
// the row is there, so that the entry is removed.
var readmePending = map[string]bool{}

// TestUsageAndReadmeListEverySetting keeps the help text and the README's
// configuration table in sync with the settings.
func TestUsageAndReadmeListEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("read README: %v", err)
	}
	usage := Usage()
	for _, s := range settings {
		for _, want := range []string{"`" + s.env + "`", "`-" + s.flag + "`"} {
			switch in := strings.Contains(string(readme), want); {
			case !in && !readmePending[s.env]:
				t.Errorf("README.md does not mention %s", want)
			case in && readmePending[s.env]:
				t.Errorf("README.md mentions %s now: remove it from readmePending", want)
			}
		}
		if !strings.Contains(usage, "-"+s.flag) || !strings.Contains(usage, s.env) {
			t.Errorf("Usage() lacks %s/-%s", s.env, s.flag)
		}
	}
}
