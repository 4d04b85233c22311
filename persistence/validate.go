package persistence

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// ValidateAppend checks one append call as Journal.AppendAsync does, and
// returns nil or an error wrapping ErrInvalid. An actor id must be non-empty
// UTF-8 text without NUL; events must carry contiguous increasing Seq values
// starting at ≥ 1 and UTF-8 types; a reminder change must not both set and
// clear, nor set a zero DueAt. In-memory journals use it to refuse exactly
// what the PostgreSQL journal refuses.
func ValidateAppend(actorID string, events []Event, reminder ReminderChange) error {
	if err := validateActorID(actorID); err != nil {
		return err
	}
	for i, e := range events {
		if e.Seq < 1 {
			return fmt.Errorf("%w: seq %d < 1", ErrInvalid, e.Seq)
		}
		if i > 0 && e.Seq != events[i-1].Seq+1 {
			return fmt.Errorf("%w: seq %d follows %d", ErrInvalid, e.Seq, events[i-1].Seq)
		}
		if !validText(e.Type) {
			return fmt.Errorf("%w: event type of seq %d is not valid UTF-8 text", ErrInvalid, e.Seq)
		}
	}
	if reminder.Set && reminder.Clear {
		return fmt.Errorf("%w: reminder change both sets and clears", ErrInvalid)
	}
	if reminder.Set && reminder.DueAt.IsZero() {
		return fmt.Errorf("%w: reminder set without a due time", ErrInvalid)
	}
	return nil
}

// ValidateSnapshot checks one SaveSnapshot call as Journal.SaveSnapshot
// does, and returns nil or an error wrapping ErrInvalid: a valid actor id, a
// Seq ≥ 0, UTF-8 types, and archive keys unique within the snapshot.
func ValidateSnapshot(actorID string, s Snapshot) error {
	if err := validateActorID(actorID); err != nil {
		return err
	}
	if s.Seq < 0 {
		return fmt.Errorf("%w: snapshot seq %d < 0", ErrInvalid, s.Seq)
	}
	if !validText(s.Type) {
		return fmt.Errorf("%w: snapshot type is not valid UTF-8 text", ErrInvalid)
	}
	var seen map[int64]struct{}
	if len(s.Archive) > 1 {
		seen = make(map[int64]struct{}, len(s.Archive))
	}
	for _, a := range s.Archive {
		if !validText(a.Type) {
			return fmt.Errorf("%w: type of archived record %d is not valid UTF-8 text", ErrInvalid, a.Key)
		}
		if seen == nil {
			continue
		}
		if _, dup := seen[a.Key]; dup {
			return fmt.Errorf("%w: archived record %d twice in one snapshot", ErrInvalid, a.Key)
		}
		seen[a.Key] = struct{}{}
	}
	return nil
}

func validateActorID(actorID string) error {
	if actorID == "" {
		return fmt.Errorf("%w: empty actor id", ErrInvalid)
	}
	if !validText(actorID) {
		return fmt.Errorf("%w: actor id is not valid UTF-8 text", ErrInvalid)
	}
	return nil
}

// validText reports whether s can be stored in a PostgreSQL text column.
func validText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}
