package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/concert/ticketing/loadgen"
	"github.com/concert/ticketing/node"
	"github.com/concert/ticketing/persistence/pgtest"
)

// runSelf is `concertbench self`: it starts a throwaway PostgreSQL (from the
// binaries on PATH or under /usr/lib/postgresql) and a concertd on it,
// runs the benchmark against them with the raw PostgreSQL ceiling, times a
// restart of the server on the journal the run left, and stops both.
func runSelf(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("concertbench self", flag.ContinueOnError)
	fs.SetOutput(stderr)
	_, scenarios, modes, settings := defineFlags(fs, &o)
	concertd := fs.String("concertd", "bin/concertd", "the server binary to start")
	serverLog := fs.String("server-log", "", "file for the server's log (default: in the temporary directory, kept only on failure)")
	restart := fs.Bool("restart", true, "at the end, restart the server and time until it is ready")
	inProcess := fs.Bool("in-process", false, "run the server in this process (node.Start) instead of executing -concertd; with -cpuprofile the profiles show server and generator together")
	activeTokens := fs.Int("server-active-tokens", 0, "the server's ACTIVE_TOKENS (default: enough for the chosen scenarios, plus a little for queue-surge)")
	env := settingsFlag{}
	fs.Var(&env, "server-env", "KEY=VALUE passed to the server's environment, e.g. JOURNAL_WRITERS=8 (repeatable)")
	o.adminKey = randomKey()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitUsage
		}
		fmt.Fprintln(stderr, "concertbench self:", err)
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "concertbench self: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	if err := o.finish("http://127.0.0.1:1", *scenarios, *modes, *settings); err != nil {
		fmt.Fprintln(stderr, "concertbench self:", err)
		return exitUsage
	}
	bin, err := filepath.Abs(*concertd)
	if err == nil && !*inProcess {
		_, err = os.Stat(bin)
	}
	if err != nil {
		fmt.Fprintf(stderr, "concertbench self: server binary: %v (build it with `make build`)\n", err)
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	fmt.Fprintln(stderr, "concertbench self: starting a throwaway PostgreSQL")
	pg, err := pgtest.StartServer(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "concertbench self: PostgreSQL:", err)
		return exitFailed
	}
	defer func() {
		if err := pg.Close(); err != nil {
			fmt.Fprintln(stderr, "concertbench self: stop PostgreSQL:", err)
		}
	}()
	dbURL := pg.URL("postgres")

	port, err := freePort()
	if err != nil {
		fmt.Fprintln(stderr, "concertbench self:", err)
		return exitFailed
	}
	tokens := *activeTokens
	if tokens <= 0 {
		tokens = o.tokensNeeded()
	}
	srvEnv := map[string]string{
		"DATABASE_URL":  dbURL,
		"HTTP_ADDR":     "127.0.0.1:" + strconv.Itoa(port),
		"ADMIN_KEY":     o.adminKey,
		"ACTIVE_TOKENS": strconv.Itoa(tokens),
		"LOG_LEVEL":     "warn",
		// Thousands of benchmark clients on one address: no per-client limits.
		"RATE_USERS": "0", "RATE_TOKEN_ISSUE": "0", "RATE_TOKEN_POLL": "0",
	}
	for k, v := range env {
		srvEnv[k] = v
	}
	logPath := *serverLog
	keepLog := logPath != ""
	if logPath == "" {
		f, err := os.CreateTemp("", "concertd-bench-*.log")
		if err != nil {
			fmt.Fprintln(stderr, "concertbench self:", err)
			return exitFailed
		}
		logPath = f.Name()
		f.Close()
	}
	srv := &server{bin: bin, env: srvEnv, logPath: logPath, base: "http://127.0.0.1:" + strconv.Itoa(port), inProcess: *inProcess}
	what := *concertd
	if *inProcess {
		what = "a node in this process"
	}
	fmt.Fprintf(stderr, "concertbench self: starting %s on %s (ACTIVE_TOKENS=%d, log %s)\n", what, srv.base, tokens, logPath)
	if _, err := srv.start(ctx); err != nil {
		fmt.Fprintln(stderr, "concertbench self:", err)
		return exitFailed
	}
	defer srv.stop()

	o.urls = []string{srv.base}
	o.databaseURL = dbURL
	o.activeTokens = tokens
	o.settings = map[string]string{"ACTIVE_TOKENS": strconv.Itoa(tokens), "LOG_LEVEL": "warn", "PostgreSQL": "throwaway, fsync=on, synchronous_commit=on"}
	for k, v := range env {
		o.settings[k] = v
	}
	o.settingsFrom = "set by concertbench self; every other setting is concertd's default"
	if *inProcess {
		o.settings["server"] = "in the generator's process (-in-process)"
		o.inProcess = true
	}
	target, _ := loadgen.CheckTarget(srv.base, false)
	command := strings.Join(append([]string{"concertbench", "self"}, args...), " ")
	rep := runSuite(ctx, o, []*url.URL{target}, stderr, command)

	if *restart && ctx.Err() == nil {
		if rs, err := srv.timeRestart(ctx, dbURL); err != nil {
			rep.Notes = append(rep.Notes, "restart not timed: "+err.Error())
			fmt.Fprintln(stderr, "concertbench self: restart:", err)
		} else {
			rep.Server.Restart = rs
			fmt.Fprintf(stderr, "concertbench self: restarted server ready in %.2f s after %d journaled events\n", rs.ReadySeconds, rs.JournalEvents)
		}
		rep.Evaluate()
	}
	code := finishReport(ctx, o, rep, stdout, stderr)
	if code == exitOK && !keepLog {
		_ = os.Remove(logPath)
	} else {
		fmt.Fprintf(stderr, "concertbench self: the server's log is %s\n", logPath)
	}
	return code
}

// tokensNeeded is an ACTIVE_TOKENS that admits every user of the chosen
// scenarios at once (those of both modes, and the tokens of earlier runs
// of this server stay ACTIVE), plus room for part of a queue-surge, whose
// other users must wait.
func (o *options) tokensNeeded() int {
	need := 0
	for _, sc := range o.scenarios {
		n := 0
		switch sc {
		case "hot-seat", "hot":
			n = o.scaled(o.fans)
		case "sold-out":
			n = o.scaled(o.soldOutFans)
		case "holds":
			n = o.scaled(o.users)
		case "fresh-holds":
			n = o.freshConfig(loadgen.Common{}).Users()
		case "wallet-storm":
			n = o.wallets
		case "journey":
			n = o.scaled(o.journeyFans)
		}
		if sc == "holds" {
			need += n // one fixture for both modes
		} else {
			need += n * len(o.modes)
		}
	}
	if contains(o.scenarios, "queue-surge") {
		need += max(100, min(o.scaled(o.surgeUsers)/10, 2000))
	}
	return need + 100
}

// server is a concertd child process, or a node in this process.
type server struct {
	bin, logPath, base string
	env                map[string]string
	cmd                *exec.Cmd
	exited             chan error
	inProcess          bool
	node               *node.Node
}

func (s *server) start(ctx context.Context) (time.Duration, error) {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	if s.inProcess {
		return s.startNode(ctx)
	}
	cmd := exec.Command(s.bin)
	cmd.Env = os.Environ()
	for k, v := range s.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", s.bin, err)
	}
	s.cmd, s.exited = cmd, make(chan error, 1)
	go func() { s.exited <- cmd.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case err := <-s.exited:
			s.cmd = nil
			return 0, fmt.Errorf("the server exited at start (%v); its log:\n%s", err, tail(s.logPath, 20))
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		resp, err := hc.Get(s.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(began), nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the server was not ready after 2 minutes; its log:\n%s", tail(s.logPath, 20))
		}
	}
}

// startNode starts the server as a node in this process.
func (s *server) startNode(ctx context.Context) (time.Duration, error) {
	began := time.Now()
	tokens, _ := strconv.Atoi(s.env["ACTIVE_TOKENS"])
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	n, err := node.Start(ctx, node.Config{DatabaseURL: s.env["DATABASE_URL"], AdminKey: s.env["ADMIN_KEY"],
		ActiveTokens: tokens, Logger: slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		logf.Close()
		return 0, err
	}
	ln, err := net.Listen("tcp", s.env["HTTP_ADDR"])
	if err != nil {
		_ = n.Shutdown(context.Background())
		logf.Close()
		return 0, err
	}
	s.node, s.exited = n, make(chan error, 1)
	go func() { s.exited <- n.Serve(ln); logf.Close() }()
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := hc.Get(s.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(began), nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop ends the server with SIGTERM (SIGKILL after 60 s).
func (s *server) stop() {
	if s.node != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_ = s.node.Shutdown(ctx)
		cancel()
		<-s.exited
		s.node = nil
		return
	}
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(60 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// timeRestart stops the server, counts the journal, starts it again and
// times it until /readyz answers 200.
func (s *server) timeRestart(ctx context.Context, dbURL string) (*loadgen.Restart, error) {
	s.stop()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	var events int64
	err = conn.QueryRow(ctx, "SELECT count(*) FROM journal_events").Scan(&events)
	conn.Close(ctx)
	if err != nil {
		return nil, err
	}
	ready, err := s.start(ctx)
	if err != nil {
		return nil, err
	}
	return &loadgen.Restart{JournalEvents: events, ReadySeconds: ready.Seconds()}, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func randomKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}
