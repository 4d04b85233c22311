// Package pgtest runs throwaway PostgreSQL servers and databases for tests.
//
// Most tests want a fresh, migrated database on a server shared by the whole
// test binary:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestX(t *testing.T) {
//		pool := pgtest.NewDatabase(t) // dropped in t.Cleanup
//		...
//	}
//
// The shared server starts on first use and is stopped by Main. If the
// environment variable TEST_DATABASE_URL is set (a URL of a role allowed to
// CREATE DATABASE), its server is used instead and nothing is started; once
// a binary starts its shared server it sets that variable to it, so the test
// binaries it runs (a fuzzing coordinator's workers) share it too. Each
// server's directory has an owner file that every process using the server
// holds locked, and servers nobody holds any more (their owner died without
// stopping them) are stopped at the next start or Main.
//
// Tests that stop and start PostgreSQL (outages) get their own server with
// NewServer and a database on it with Server.NewDatabase.
//
// Servers are started from the PostgreSQL binaries on PATH or under
// /usr/lib/postgresql/*/bin. PostgreSQL refuses to run as root: under root
// the server runs as the "postgres" system user, in a directory it owns.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/concert/ticketing/persistence"
)

// EnvURL names the environment variable that points the tests at an existing
// server instead of a throwaway one.
const EnvURL = "TEST_DATABASE_URL"

// startTimeout bounds starting a server (initdb + pg_ctl start).
const startTimeout = 2 * time.Minute

// Server is a throwaway PostgreSQL server: its data directory lives under
// os.TempDir() and is removed by Close. Stop and Start may be repeated (to
// simulate an outage); the server keeps its data directory and port.
type Server struct {
	binDir  string
	dir     string // owned by the server's user; holds data/, the socket and the log
	port    int
	cred    *syscall.Credential // nil unless running as root
	owner   *os.File            // dir's owner file, locked while this process uses the server
	mu      sync.Mutex
	running bool
}

// StartServer creates a data directory, picks a free loopback port and
// starts a server. Call Close to stop it and remove its directory.
func StartServer(ctx context.Context) (*Server, error) {
	s, err := serverIn("")
	if err != nil {
		return nil, err
	}
	reaped.Do(reapOrphans)
	s.dir, err = os.MkdirTemp(os.TempDir(), "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if s.owner, err = lockOwner(s.dir); err != nil {
		_ = os.RemoveAll(s.dir)
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	started := false
	defer func() {
		if !started {
			s.owner.Close()
			_ = os.RemoveAll(s.dir)
		}
	}()
	if err := os.Chmod(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if s.cred != nil {
		if err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	if err := s.run(ctx, "initdb", "-A", "trust", "-U", "postgres", "--no-sync",
		"-E", "UTF8", "--locale=C", "-D", s.dataDir()); err != nil {
		return nil, err
	}
	// Another process may take the port between our probe and the
	// server's bind: try a few ports.
	for attempt := 0; ; attempt++ {
		s.port, err = freePort()
		if err == nil {
			err = s.Start(ctx)
		}
		if err == nil {
			started = true
			return s, nil
		}
		if attempt == 2 || ctx.Err() != nil {
			return nil, err
		}
	}
}

// serverIn is a Server on the data under dir (not started, not running):
// the PostgreSQL binaries found, and under root the postgres user to run
// them as.
func serverIn(dir string) (*Server, error) {
	binDir, err := findBinDir()
	if err != nil {
		return nil, err
	}
	s := &Server{binDir: binDir, dir: dir}
	if os.Geteuid() == 0 {
		if s.cred, err = postgresCredential(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// NewServer starts a server for one test and closes it in t.Cleanup.
func NewServer(t testing.TB) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	s, err := StartServer(ctx)
	if err != nil {
		t.Fatalf("pgtest: start server: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("pgtest: close server: %v", err)
		}
	})
	return s
}

// Port is the loopback TCP port the server listens on.
func (s *Server) Port() int { return s.port }

// URL is the connection URL of database dbname as superuser postgres.
func (s *Server) URL(dbname string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Start starts the server (again) on its data directory and port and waits
// until it accepts connections. After Stop it runs crash recovery first.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return nil
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c max_connections=200",
		s.port, s.dir)
	if err := s.run(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", s.dataDir(),
		"-l", filepath.Join(s.dir, "postgres.log"), "-o", opts); err != nil {
		return fmt.Errorf("%w\n--- postgres.log (tail) ---\n%s", err, s.logTail())
	}
	s.running = true
	return nil
}

// Stop stops the server at once (pg_ctl -m immediate: no checkpoint, clients
// are cut off), as a crash or an outage would.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.run(ctx, "pg_ctl", "stop", "-m", "immediate", "-w", "-D", s.dataDir()); err != nil {
		return err
	}
	s.running = false
	return nil
}

// Close stops the server and removes its directory.
func (s *Server) Close() error {
	err := s.Stop()
	if rmErr := os.RemoveAll(s.dir); rmErr != nil && err == nil {
		err = fmt.Errorf("pgtest: %w", rmErr)
	}
	if s.owner != nil {
		s.owner.Close()
	}
	return err
}

// NewDatabase creates a fresh database on this server with the migrations
// applied, and returns a pool on it; both are closed and dropped in
// t.Cleanup (the drop is skipped if the server is then stopped).
func (s *Server) NewDatabase(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return newPool(t, s.NewDatabaseURL(t))
}

// NewDatabaseURL is NewDatabase returning the database's URL instead of a
// pool.
func (s *Server) NewDatabaseURL(t testing.TB) string {
	t.Helper()
	return createDatabase(t, s.URL("postgres"))
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

func (s *Server) logTail() string {
	b, err := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// run runs a PostgreSQL program as the server's user.
func (s *Server) run(ctx context.Context, prog string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(s.binDir, prog), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGTZ=UTC")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
		cmd.Env = append(cmd.Env, "HOME="+s.dir, "USER=postgres", "LOGNAME=postgres")
	}
	// pg_ctl start leaves the server holding the output pipes if they are
	// pipes: give it files instead.
	out, err := os.CreateTemp("", "pgtest-out-")
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	keepDescriptorsFromChildren()
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		return fmt.Errorf("pgtest: %s %s: %w: %s", prog, strings.Join(args, " "), err, strings.TrimSpace(string(b)))
	}
	return nil
}

// findBinDir finds the directory holding initdb and pg_ctl: PATH first
// (following symlinks, so the server binary beside them is found too), then
// the newest /usr/lib/postgresql/*/bin.
func findBinDir() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dir := filepath.Dir(real)
			if isExec(filepath.Join(dir, "initdb")) && isExec(filepath.Join(dir, "postgres")) {
				return dir, nil
			}
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, k int) bool { return versionOf(dirs[i]) > versionOf(dirs[k]) })
	for _, dir := range dirs {
		if isExec(filepath.Join(dir, "pg_ctl")) && isExec(filepath.Join(dir, "initdb")) {
			return dir, nil
		}
	}
	return "", errors.New("pgtest: no PostgreSQL binaries (pg_ctl, initdb) on PATH or under /usr/lib/postgresql/*/bin; install postgresql or set " + EnvURL)
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

func postgresCredential() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root needs the postgres system user: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: uid of postgres: %w", err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: gid of postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// freePort asks the kernel for a free loopback TCP port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// shared is the server behind NewDatabase, started once per test binary.
var shared struct {
	once     sync.Once
	srv      *Server // nil when EnvURL is used
	adminURL string
	err      error
	joined   *os.File // the owner file locked by joinOwner, if handed one
}

func sharedAdminURL() (string, error) {
	shared.once.Do(func() {
		if u := os.Getenv(EnvURL); u != "" {
			shared.adminURL, shared.err = u, joinOwner()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		shared.srv, shared.err = StartServer(ctx)
		if shared.err == nil {
			shared.adminURL = shared.srv.URL("postgres")
			// Test binaries this one starts — a fuzzing coordinator's
			// workers — use this server rather than each starting (and,
			// when stopped, leaving behind) one of its own, and lock its
			// owner file too, so it is not reaped while one still runs.
			// Main stops it after they are gone.
			if os.Setenv(envOwner, filepath.Join(shared.srv.dir, ownerFile)) != nil || os.Setenv(EnvURL, shared.adminURL) != nil {
				os.Unsetenv(EnvURL) // not shared, then; nothing else changes
			}
		}
	})
	return shared.adminURL, shared.err
}

// Main runs the tests of a package and then stops the shared server, and
// exits with the tests' status. Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	// Servers of processes this one started and outlived (a fuzzing
	// worker killed before its Main ran) go now, not at the next run.
	reapOrphans()
	if shared.srv != nil {
		if err := shared.srv.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// NewDatabase creates a fresh database (with the migrations applied) on the
// shared server and returns a pool on it (MaxConns 32). The pool is closed
// and the database dropped in t.Cleanup.
func NewDatabase(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return newPool(t, NewDatabaseURL(t))
}

// NewDatabaseURL creates a fresh database (with the migrations applied) on
// the shared server and returns its URL; it is dropped in t.Cleanup.
func NewDatabaseURL(t testing.TB) string {
	t.Helper()
	admin, err := sharedAdminURL()
	if err != nil {
		t.Fatalf("pgtest: shared server: %v", err)
	}
	return createDatabase(t, admin)
}

// NewEmptyDatabaseURL creates a fresh database without the migrations on
// the shared server (for tests of Migrate itself) and returns its URL; it is
// dropped in t.Cleanup.
func NewEmptyDatabaseURL(t testing.TB) string {
	t.Helper()
	admin, err := sharedAdminURL()
	if err != nil {
		t.Fatalf("pgtest: shared server: %v", err)
	}
	return createEmptyDatabase(t, admin)
}

var dbCounter atomic.Int64

// createDatabase creates and migrates database t_<pid>_<n> through adminURL
// and registers its drop.
func createDatabase(t testing.TB, adminURL string) string {
	t.Helper()
	dbURL := createEmptyDatabase(t, adminURL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer pool.Close()
	if err := persistence.Migrate(ctx, pool); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dbURL
}

func createEmptyDatabase(t testing.TB, adminURL string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), dbCounter.Add(1))
	if err := adminExec(ctx, adminURL, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	dbURL, err := withDatabase(adminURL, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// The server may be stopped by the test: then there is nothing to
		// drop worth waiting for (a throwaway server is removed anyway).
		_ = adminExec(ctx, adminURL, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return dbURL
}

func newPool(t testing.TB, dbURL string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	cfg.MaxConns = 32
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func adminExec(ctx context.Context, adminURL, sql string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// withDatabase returns rawURL with its database name replaced.
func withDatabase(rawURL, name string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", EnvURL, err)
	}
	u.Path = "/" + name
	return u.String(), nil
}
