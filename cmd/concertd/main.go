// Command concertd serves the concert reservation API: config → defaults →
// validate → build the node → serve → wait for a signal → shut down.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

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
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		_ = n.Shutdown(context.Background())
		return fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	logger.Info("serving", "addr", ln.Addr().String(), "node", cfg.NodeID)

	served := make(chan error, 1)
	go func() { served <- n.Serve(ln) }()
	select {
	case err = <-served:
	case <-ctx.Done():
		logger.Info("shutting down")
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if serr := n.Shutdown(shutdownCtx); serr != nil && err == nil {
		err = serr
	}
	return err
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
