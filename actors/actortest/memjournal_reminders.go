package actortest

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/concert/ticketing/persistence"
)

// DueReminders has the contract of persistence.Journal.DueReminders: up to
// limit (> 0) reminders due strictly before before (compared at microsecond
// precision), ordered by DueAt then ActorID.
func (m *MemJournal) DueReminders(ctx context.Context, before time.Time, limit int) ([]persistence.Reminder, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("journal due reminders: %w: limit %d ≤ 0", persistence.ErrInvalid, limit)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("journal due reminders: %w", err)
	}
	before = pgTime(before)
	m.mu.Lock()
	if m.down {
		m.mu.Unlock()
		return nil, fmt.Errorf("journal due reminders: %w", errDown)
	}
	var out []persistence.Reminder
	for id, due := range m.reminders {
		if due.Before(before) {
			out = append(out, persistence.Reminder{ActorID: id, DueAt: due})
		}
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, k int) bool {
		if !out[i].DueAt.Equal(out[k].DueAt) {
			return out[i].DueAt.Before(out[k].DueAt)
		}
		return out[i].ActorID < out[k].ActorID
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Reminder returns the actor's stored reminder, if any.
func (m *MemJournal) Reminder(actorID string) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	due, ok := m.reminders[actorID]
	return due, ok
}
