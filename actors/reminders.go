package actors

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/concert/ticketing/cluster"
	"github.com/concert/ticketing/messages"
	"github.com/concert/ticketing/persistence"
)

// ReminderService defaults.
const (
	reminderDefaultInterval = time.Second
	reminderDefaultBatch    = 1000
	reminderWakeTimeout     = 10 * time.Second
	reminderParallel        = 16
	reminderBackoffMax      = 30 * time.Second
)

// ReminderSource lists durable reminders; persistence.Journal implements it.
type ReminderSource interface {
	DueReminders(ctx context.Context, before time.Time, limit int) ([]persistence.Reminder, error)
}

// ReminderService brings back actors that have open work, without client
// traffic (Orleans' reminders): every Interval it reads the reminders due by
// the next scan and sends each actor a messages.Wake through the router,
// which activates it — recovering it from its journal — if it is not
// running. An activated actor re-arms its own timers and resumes its sagas;
// a running one answers at once. Journaled actors keep their reminder no
// later than their next due time (see Reminding), written with their events.
//
// So after a crash every seat actor with live holds or a payment in flight,
// and the queue manager with live tokens, is running again within about one
// Interval of the node's start.
type ReminderService struct {
	Source ReminderSource
	Router cluster.Router
	// Interval between scans (default 1 s); a scan that fails waits longer,
	// doubling up to 30 s, with jitter.
	Interval time.Duration
	// Batch is the most reminders read per scan (default 1000); a full batch
	// is followed by another scan at once.
	Batch  int
	Now    func() time.Time
	Logger *slog.Logger
}

// Run scans until ctx ends. The first scan runs at once.
func (s *ReminderService) Run(ctx context.Context) {
	interval, batch, now, log := s.Interval, s.Batch, s.Now, s.Logger
	if interval <= 0 {
		interval = reminderDefaultInterval
	}
	if batch <= 0 {
		batch = reminderDefaultBatch
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	wait := time.Duration(0)
	backoff := interval
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		n, err := s.scan(ctx, now().Add(interval), batch)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.Warn("reminder scan failed", "err", err, "retry_in", backoff)
			wait = backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, reminderBackoffMax)
		case n >= batch:
			wait, backoff = 0, interval
		default:
			wait, backoff = interval, interval
		}
	}
}

// Scan wakes every actor whose reminder is due before the given time and
// returns how many reminders it read.
func (s *ReminderService) Scan(ctx context.Context, before time.Time) (int, error) {
	limit := s.Batch
	if limit <= 0 {
		limit = reminderDefaultBatch
	}
	return s.scan(ctx, before, limit)
}

func (s *ReminderService) scan(ctx context.Context, before time.Time, limit int) (int, error) {
	due, err := s.Source.DueReminders(ctx, before, limit)
	if err != nil {
		return 0, err
	}
	sem := make(chan struct{}, reminderParallel)
	var wg sync.WaitGroup
	for _, r := range due {
		kind, identity, ok := strings.Cut(r.ActorID, "/")
		if !ok {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			wctx, cancel := context.WithTimeout(ctx, reminderWakeTimeout)
			defer cancel()
			if _, err := s.Router.Request(wctx, kind, identity, &messages.Wake{}); err != nil && s.Logger != nil {
				s.Logger.Debug("wake failed", "actor", r.ActorID, "err", err)
			}
		}()
	}
	wg.Wait()
	return len(due), nil
}
