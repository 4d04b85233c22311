// Command concertd serves the concert reservation API: config → defaults →
// validate → build the node → serve → wait for a signal → shut down.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	httpapi "github.com/concert/ticketing/http"
	"github.com/concert/ticketing/node"
)

func main() {
	err := run()
	if errors.Is(err, flag.ErrHelp) {
		fmt.Println(Usage())
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "concertd:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := LoadConfig(os.Args[1:], os.Getenv)
	if err != nil {
		return err
	}
	logger := newLogger(cfg.LogLevel)
	tuneGC(os.LookupEnv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	n, err := node.Start(ctx, cfg.Node(logger))
	if err != nil {
		return err
	}
	if cfg.DemoData {
		if err := loadDemo(ctx, n); err != nil {
			_ = n.Shutdown(context.Background())
			return fmt.Errorf("demo data: %w", err)
		}
	}
	ln, err := httpapi.Listen(ctx, cfg.HTTPAddr)
	if err != nil {
		_ = n.Shutdown(context.Background())
		return err
	}
	logger.Info("serving", "addr", ln.Addr().String(), "node", cfg.NodeID)

	served := make(chan error, 1)
	go func() { served <- n.Serve(ln) }()
	serving := true
	select {
	case err = <-served:
		serving = false
	case <-ctx.Done():
		logger.Info("shutting down: answering the requests already received", "timeout", cfg.ShutdownTimeout)
	}
	// Stop taking connections, answer what was read (up to
	// SHUTDOWN_TIMEOUT), then stop the actors and flush the journal.
	start := time.Now()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if serr := n.Shutdown(shutdownCtx); serr != nil && err == nil {
		err = serr
	}
	if serving {
		if serr := <-served; serr != nil && err == nil {
			err = serr
		}
	}
	logger.Info("stopped", "took", time.Since(start).Round(time.Millisecond), "err", err)
	return err
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
